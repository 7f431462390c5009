"""Networks in the information plane: tasks, training, recording and estimators (torch).

Needs the ``dnn`` extra (``pip install 'ibsolver[dnn]'``). Imports ``ibsolver`` for the
bound; ``ibsolver`` never imports this package.
"""

"""Declares the optional C++ extension ibsolver._core; metadata lives in pyproject.toml.

The extension is built by GCC or clang (the kernel uses their vector extensions; MSVC is
not supported) with C++17 and -O3, with OpenMP when the compiler supports it
(found by test-compiling), and without -march flags: the kernel picks AVX-512, AVX2+FMA or
baseline x86-64 code at run time. If it cannot be built, the install still succeeds
without it (with a loud warning); ``ibsolver.show_config()`` then reports it missing and
the numba / numpy backends are used.
"""
import os
import sys
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    import pybind11
except ImportError:  # only a plain `python setup.py` without build isolation gets here
    pybind11 = None

_BANNER = "=" * 78


def _warn(message):
    text = textwrap.fill(message, 76)
    sys.stderr.write(f"\n{_BANNER}\nWARNING (ibsolver): {text}\n{_BANNER}\n\n")
    sys.stderr.flush()


_HOW_TO_FIX = ("ibsolver is installed WITHOUT it: backend='cpp' is unavailable and 'auto' "
               "falls back to numba or numpy. Install a C++17 compiler (g++ >= 8 or "
               "clang >= 7) and reinstall to get it; ibsolver.show_config() says what was "
               "built.")


class OptionalBuildExt(build_ext):
    """build_ext that probes compiler flags, adds OpenMP if it works, and never fails."""

    def _compiles(self, source, flags, link=False):
        """Whether `source` compiles (and links, if asked) with `flags`."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "probe.cpp")
            with open(path, "w") as f:
                f.write(source)
            try:
                objects = self.compiler.compile([path], output_dir=tmp, extra_postargs=flags)
                if link:
                    self.compiler.link_executable(objects, "probe", output_dir=tmp,
                                                  extra_postargs=flags, target_lang="c++")
            except Exception:  # noqa: BLE001 - any failure means "not supported"
                return False
        return True

    def _skip(self, ext, why):
        self._skipped = getattr(self, "_skipped", set()) | {ext.name}
        _warn(f"could not build the C++ extension {ext.name} ({why}). {_HOW_TO_FIX}")

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":  # no build path: say why instead of a flag error
            for ext in self.extensions:
                self._skip(ext, "MSVC cannot compile the kernel's GCC/clang vector extensions")
            return
        base, openmp = ["-std=c++17", "-O3", "-g0", "-fvisibility=hidden"], ["-fopenmp"]
        if not self._compiles("#include <vector>\nint main(){ std::vector<int> v{1}; }\n", base):
            for ext in self.extensions:
                self._skip(ext, "no working C++17 compiler was found")
            return
        # the 512-bit vector types of the AVX-512 kernel otherwise warn about the ABI
        base += [f for f in ("-Wno-psabi",) if self._compiles("int main(){}\n", ["-Werror", f])]
        probe = "#include <omp.h>\nint main(){ return omp_get_max_threads() > 0 ? 0 : 1; }\n"
        use_openmp = self._compiles(probe, base + openmp, link=True)
        if not use_openmp:
            _warn("the C++ compiler does not support OpenMP; ibsolver._core will run on one "
                  "thread (n_threads is ignored by the cpp backend).")
        for ext in self.extensions:
            ext.extra_compile_args = base + (openmp if use_openmp else [])
            ext.extra_link_args = openmp if use_openmp else []
        super().build_extensions()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - the extension is optional
            self._skip(ext, exc)

    def copy_extensions_to_source(self):  # --inplace: copy only what was built
        skipped = getattr(self, "_skipped", set())
        built = self.extensions
        self.extensions = [ext for ext in built if ext.name not in skipped]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = built

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - last resort: the extension is optional
            _warn(f"building the C++ extension failed ({exc}). {_HOW_TO_FIX}")


ext_modules = []
if pybind11 is None:
    _warn("pybind11 is not installed, so the C++ extension ibsolver._core is not built; "
          "`pip install .` installs pybind11 for the build automatically.")
else:
    ext_modules.append(
        Extension(
            "ibsolver._core",
            sources=["csrc/ba_kernel.cpp", "csrc/newton_jacobian.cpp", "csrc/squarem.cpp",
                     "csrc/bindings.cpp"],
            include_dirs=["csrc", pybind11.get_include()],
            depends=["csrc/ba_kernel.hpp", "csrc/fast_exp.hpp"],
            language="c++",
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

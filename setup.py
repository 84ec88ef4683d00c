"""Builds the native ProfitDLL stand-in as an optional extension.

The stand-in is a plain C shared library loaded with ctypes, exactly like the real DLL; building it through
setuptools' extension machinery means `pip install` compiles it wherever a C compiler exists, and still succeeds
(with a warning) where none does. Asking for the simulator feed then says clearly that it is missing.
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler: install anyway, the simulator feed reports it is missing
            print(f"warning: native simulator not built ({exc}); feed='simulator' will be unavailable", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: native simulator not built ({exc}); feed='simulator' will be unavailable", file=sys.stderr)


ext_modules = []
if sys.platform != "win32":
    ext_modules.append(
        Extension(
            "app.feed.simulator._profitsim",
            sources=["app/feed/simulator/profitsim.c", "app/feed/simulator/profitsim_routing.c"],
            depends=["app/feed/simulator/profitsim.h"],
            extra_compile_args=["-O2", "-std=c11", "-pthread", "-fvisibility=default"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

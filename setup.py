"""Builds the native ProfitDLL stand-in, the native callback ring, its record decoder and the ZMQ batch sender as
optional extensions.

The first two are plain C shared libraries loaded with ctypes, exactly like the real DLL; the other two are CPython
modules (they build or read Python objects). Building them through setuptools' extension machinery means
`pip install` compiles them wherever a C compiler exists, and still succeeds (with a warning) where none does.
Asking for the simulator feed then says clearly that it is missing; without the others the Python code they
replace runs (the ctypes callbacks, the Python decoder, pyzmq's sends).
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# what each optional library's absence means, for the warning printed when it cannot be built
CONSEQUENCE = {
    "app.feed.simulator._profitsim": "feed='simulator' will be unavailable",
    "app.feed.native._ring": "the DLL callbacks will run through ctypes (feed.bridge = \"ctypes\")",
    "app.feed.native._decode": "the native ring's records will be converted in Python (slower, the same events)",
    "app.io._zmq_batch": "ZMQ messages will be sent through pyzmq one frame at a time (slower, the same stream)",
}


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all: install anyway, each feature reports itself missing
            print(f"warning: native libraries not built ({exc}); {'; '.join(CONSEQUENCE.values())}",
                  file=sys.stderr)

    def build_extension(self, ext):
        if ext.name == "app.feed.native._decode" and self.compiler.compiler_type == "msvc":
            ext.extra_compile_args = ["/O2", "/std:c11"]
        if ext.name == "app.feed.native._ring":
            if self.compiler.compiler_type == "msvc":
                ext.extra_compile_args = ["/O2", "/std:c11"]
                ext.extra_link_args = []
                ext.libraries = ["synchronization"]  # WaitOnAddress / WakeByAddressAll
            elif sys.platform == "win32":  # mingw-w64
                ext.extra_compile_args = ["-O2", "-std=c11"]
                ext.extra_link_args = []
                ext.libraries = ["synchronization"]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: {ext.name} not built ({exc}); {CONSEQUENCE.get(ext.name, '')}", file=sys.stderr)

    def get_export_symbols(self, ext):
        if ext.name in ("app.feed.native._decode", "app.io._zmq_batch"):  # real Python modules
            return super().get_export_symbols(ext)
        # plain libraries, not Python modules: there is no PyInit_ function for MSVC's linker to export
        return []


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
ext_modules.append(
    Extension(
        "app.feed.native._ring",
        sources=["app/feed/native/ring.c", "app/feed/native/ring_callbacks.c", "app/feed/native/ring_test.c"],
        depends=["app/feed/native/ring.h", "app/feed/native/ring_port.h"],
        # exports are marked one by one (RING_EXPORT); the ring's internals stay hidden
        extra_compile_args=["-O2", "-std=c11", "-pthread", "-fvisibility=hidden"],
        extra_link_args=["-pthread"],
        optional=True,
    )
)

ext_modules.append(
    Extension(
        "app.feed.native._decode",
        sources=["app/feed/native/ring_decode.c"],
        depends=["app/feed/native/ring.h", "app/feed/native/ring_port.h"],
        optional=True,
    )
)
ext_modules.append(Extension("app.io._zmq_batch", sources=["app/io/zmq_batch.c"], optional=True))

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

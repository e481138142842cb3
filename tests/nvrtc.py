"""NVRTC (CUDA's runtime compiler, the one ``cupy.RawKernel`` uses) through ctypes, from
the ``nvidia-cuda-nvrtc-cu12`` wheel: compiles CUDA C to PTX for a named architecture
with no GPU and no driver (CuPy's own helpers ask the driver for the architecture)."""
import ctypes
import glob
import os


class NVRTCError(Exception):
    pass


def find_library():
    """Path of libnvrtc.so.* from the wheel, or None when it is not installed."""
    try:
        import nvidia.cuda_nvrtc as pkg
    except ImportError:
        return None
    for folder in pkg.__path__:
        found = sorted(glob.glob(os.path.join(folder, 'lib', 'libnvrtc.so.*')))
        found = [f for f in found if 'builtins' not in f and '.alt.' not in f]
        if found:
            return found[0]
    return None


_lib = None


def library():
    global _lib
    if _lib is None:
        path = find_library()
        if path is None:
            raise NVRTCError('nvidia-cuda-nvrtc-cu12 is not installed')
        _lib = ctypes.CDLL(path)
    return _lib


def version():
    lib = library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_ptx(source, arch, options=(), name='kernel.cu'):
    """(ptx, log) for ``source`` compiled to PTX for ``arch`` (e.g. 'sm_80'); NVRTCError
    with the compiler's log when it does not compile."""
    return _compile(source, 'compute_' + arch.split('_')[1], options, name, 'PTX')


def compile_cubin(source, arch, options=(), name='kernel.cu'):
    """(cubin bytes, log): compiled through to machine code for ``arch`` (ptxas runs too,
    so shared memory or register limits of that architecture are checked)."""
    return _compile(source, arch, options, name, 'CUBIN')


def _compile(source, arch, options, name, what):
    lib = library()
    prog = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None))
    try:
        opts = ['--gpu-architecture=%s' % arch] + list(options)
        argv = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        status = lib.nvrtcCompileProgram(prog, len(opts), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors='replace')
        if status != 0:
            raise NVRTCError('%s (%s): %s' % (error_string(lib, status), ' '.join(opts), log))
        getattr(lib, 'nvrtcGet%sSize' % what)(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        check(lib, getattr(lib, 'nvrtcGet%s' % what)(prog, buf))
        return (buf.value.decode() if what == 'PTX' else buf.raw), log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def error_string(lib, status):
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib.nvrtcGetErrorString(status).decode()


def check(lib, status):
    if status != 0:
        raise NVRTCError(error_string(lib, status))

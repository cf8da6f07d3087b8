"""pynvml as it behaves on a machine without an NVIDIA driver: every call raises NVMLError
(NVML_ERROR_LIBRARY_NOT_FOUND), as the real bindings do there.

tests/conftest.py puts this folder first on PYTHONPATH for every test, so an agent run in a
subprocess sees no GPU whatever the test machine has (in-process tests get the same from a
stubbed `pynvml.nvmlInit`, and stub a GPU where they need one). Only what the agent's code
calls is here.
"""

NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_NOT_SUPPORTED = 3
NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    def __init__(self, value: int = NVML_ERROR_LIBRARY_NOT_FOUND):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


def _no_driver(*args, **kwargs):
    raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)


nvmlInit = nvmlShutdown = nvmlDeviceGetCount = nvmlDeviceGetHandleByIndex = nvmlDeviceGetMemoryInfo = _no_driver

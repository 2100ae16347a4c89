"""`python -m direng_kernel.kernel` launches the kernel; `... install` installs its kernelspec."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "install":
    from .install import main

    sys.exit(main(sys.argv[2:]))

from ipykernel.kernelapp import IPKernelApp

from .kernel import DirEngKernel

IPKernelApp.launch_instance(kernel_class=DirEngKernel)

"""The Pulumi program: read the stack config, build the stack, export its outputs."""

import pulumi

from infra import config, program

for name, value in program.build(config.load()).items():
    pulumi.export(name, value)

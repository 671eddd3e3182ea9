"""Contracts between the parts of trackday: plain data both the CLI and the Pulumi program
import, with neither Pulumi nor the docker SDK (and outside training/, so no image carries it)."""

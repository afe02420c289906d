"""Test suite of resnet_exp (a package, so its helpers import as tests.helpers.*)."""

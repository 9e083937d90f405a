"""`python -m artcap_lib.cli ...` (what torchrun launches) = the `artcap` command."""
import sys

from artcap_lib.cli import main

sys.exit(main())

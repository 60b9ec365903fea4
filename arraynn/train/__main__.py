import sys

from . import process_main

sys.exit(process_main())

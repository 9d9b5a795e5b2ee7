import sys

from tornadostudy.cli import main

sys.exit(main())

import sys

from tornadostudy.cli import main

# Guarded: host augmentation processes are spawned, and a spawned process imports the parent's main module.
if __name__ == "__main__":
    sys.exit(main())

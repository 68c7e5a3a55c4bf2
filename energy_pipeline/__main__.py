import sys

from energy_pipeline.cli import main

sys.exit(main())

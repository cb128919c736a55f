import sys

from blindspot_client.cli import main

sys.exit(main())

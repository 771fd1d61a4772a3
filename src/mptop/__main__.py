from mptop.cli import main

raise SystemExit(main())

from spikefa.cli import main

raise SystemExit(main())

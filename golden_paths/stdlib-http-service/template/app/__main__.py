from app.server import main

raise SystemExit(main())

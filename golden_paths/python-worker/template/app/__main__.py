from app.worker import main

raise SystemExit(main())

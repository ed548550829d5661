from evalgen.cli import main

main()

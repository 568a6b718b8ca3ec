from portfolio_cli.cli import main

main()

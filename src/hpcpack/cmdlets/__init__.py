"""The PowerShell cmdlets' behaviour, one module per family; the C# shim only declares them."""

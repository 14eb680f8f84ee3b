@{
    RootModule           = 'bin/CCPPSH.dll'
    # Must equal pyproject.toml's version, the project's one version (tests/test_install.py checks it).
    ModuleVersion        = '0.1.0'
    GUID                 = '6f1c1a9e-3c0b-4d0a-9a43-6b2f3f8d7c21'
    Author               = 'The HPC module authors'
    CompanyName          = 'HPC module for Linux'
    Copyright            = '(c) The HPC module authors. MIT License.'
    Description          = 'Microsoft HPC Pack job scheduler cmdlets for pwsh on Linux, backed by an embedded head node.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('HPC.Format.ps1xml')
    TypesToProcess       = @()
    CmdletsToExport      = @(
        'Add-HpcTask', 'Add-PSSnapin', 'Get-HpcClusterProperty', 'Get-HpcJob', 'Get-HpcJobHistory', 'Get-HpcTask',
        'Export-HpcJob', 'New-HpcJob', 'Set-HpcClusterProperty', 'Set-HpcJob', 'Stop-HpcJob', 'Stop-HpcTask', 'Submit-HpcJob',
        'Get-HpcNode', 'Set-HpcNodeState', 'Get-HpcNodeStateHistory', 'Get-HpcGroup', 'New-HpcGroup', 'Add-HpcGroup',
        'Remove-HpcGroup', 'Get-HpcClusterOverview',
        'Get-HpcJobTemplate', 'New-HpcJobTemplate', 'Remove-HpcJobTemplate', 'Export-HpcJobTemplate', 'Import-HpcJobTemplate',
        'Set-HpcTask', 'Export-HpcTask', 'Get-PSSnapin'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('HPC', 'HpcPack', 'Scheduler', 'Jobs', 'Cluster', 'Linux', 'PSEdition_Core')
            LicenseUri = 'https://example.invalid/hpcpack/LICENSE'
            ProjectUri = 'https://example.invalid/hpcpack'
        }
    }
}

@{
    # HPC Pack 2016 and later ship the cmdlets as the module Microsoft.Hpc; scripts begin with
    # 'Import-Module Microsoft.Hpc'. This manifest is that name for the same module (HPC.psd1, beside it).
    ModuleVersion        = '0.1.0'
    GUID                 = '0b9c5f1e-6a41-4c36-9d0e-2f7d8a51c3b4'
    Author               = 'The HPC module authors'
    CompanyName          = 'HPC module for Linux'
    Copyright            = '(c) The HPC module authors. MIT License.'
    Description          = 'Microsoft HPC Pack job scheduler cmdlets for pwsh on Linux: Microsoft.Hpc, the HPC module under HPC Pack 2016''s name.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    NestedModules        = @('HPC.psd1')
    CmdletsToExport      = @('*')
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
}

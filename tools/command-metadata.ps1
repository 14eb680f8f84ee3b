# Prints what the engine knows of each exported HPC cmdlet, one parameter per set per line:
# command|set|isDefault|parameter|type|position|mandatory|pipeline|aliases|accepted values
# (the source of truth that help pages are scaffolded from and checked against).
param([string] $Module = "$PSScriptRoot/../module/HPC.psd1")
$common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
$null = Import-Module $Module -PassThru
foreach ($name in (Get-Module HPC).ExportedCmdlets.Keys) {
    $command = Get-Command $name
    foreach ($set in $command.ParameterSets) {
        foreach ($p in $set.Parameters) {
            if ($common -contains $p.Name -and $p.Name -notin 'WhatIf', 'Confirm') { continue }
            $pipeline = @()
            if ($p.ValueFromPipelineByPropertyName) { $pipeline += 'ByPropertyName' }
            if ($p.ValueFromPipeline) { $pipeline += 'ByValue' }
            $pipelineText = if ($pipeline) { 'True (' + ($pipeline -join ', ') + ')' } else { 'False' }
            $position = if ($p.Position -lt 0) { 'Named' } else { [string]$p.Position }
            $values = @()
            foreach ($a in $p.Attributes) {
                if ($a -is [System.Management.Automation.ValidateSetAttribute]) { $values += $a.ValidValues }
            }
            $elementType = if ($p.ParameterType.IsArray) { $p.ParameterType.GetElementType() } else { $p.ParameterType }
            if (-not $values -and $elementType.IsEnum) { $values = [Enum]::GetNames($elementType) }
            $setName = if ($command.ParameterSets.Count -eq 1 -and $set.Name -eq '__AllParameterSets') { '(All)' } else { $set.Name }
            @($name, $setName, $set.IsDefault, $p.Name, $p.ParameterType.Name, $position, $p.IsMandatory,
              $pipelineText, ($p.Aliases -join ','), ($values -join ',')) -join '|'
        }
    }
}

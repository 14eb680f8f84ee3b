# The demo: the four examples of Stop-HpcJob's reference page, run for real against the embedded
# head node, with each job's state before and after the stop.
$ErrorActionPreference = 'Stop'
Import-Module "$PSScriptRoot/../module/HPC.psd1"

function Show([string] $title, [int[]] $ids) {
    ''
    "== $title"
    foreach ($id in $ids) {
        $job = Get-HpcJob -Id $id
        $tasks = @(Get-HpcTask -JobId $id | ForEach-Object { $_.Id + '=' + $_.State })
        '   job {0,-3} {1,-10} {2,-10} tasks: {3}' -f $job.Id, $job.Name, $job.State, ($tasks -join ' ')
        if ($job.ErrorMessage) { '              message: ' + $job.ErrorMessage }
    }
}

function WaitFor([int] $id, [string] $state) {
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while ((Get-HpcJob -Id $id).State -ne $state) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "job $id did not reach $state" }
        [System.Threading.Thread]::Sleep(50)
    }
}

# A short grace period keeps the demo quick; HPC Pack's default is 15 seconds.
Set-HpcClusterProperty -TaskCancelGracePeriod 2 -Confirm:$false

# Example 1: stop a job by ID, with a message for its owner.
$busy = New-HpcJob -Name 'job-45' -NumCores 1
$null = $busy | Add-HpcTask -CommandLine 'sleep 600'
$null = $busy | Submit-HpcJob
WaitFor $busy.Id 'Running'
Show 'Example 1, before' $busy.Id
Stop-HpcJob -Id $busy.Id -Message "Clearing space for Job 51, which needs to run immediately."
Show 'Example 1, after: Stop-HpcJob -Id <id> -Message ...' $busy.Id

# Example 2: stop a job immediately: no grace period, no node-release task.
$stubborn = New-HpcJob -Name 'job-39' -NumCores 1
$null = $stubborn | Add-HpcTask -CommandLine "trap '' TERM; sleep 600"
$null = $stubborn | Add-HpcTask -Type NodeRelease -CommandLine 'echo released'
$null = $stubborn | Submit-HpcJob
WaitFor $stubborn.Id 'Running'
Show 'Example 2, before (the task ignores SIGTERM)' $stubborn.Id
$started = [DateTime]::UtcNow
Stop-HpcJob -Id $stubborn.Id -Force
'   stopped in {0:N0} ms' -f ([DateTime]::UtcNow - $started).TotalMilliseconds
Show 'Example 2, after: Stop-HpcJob -Id <id> -Force' $stubborn.Id

# Example 3: create a job, add a task, submit it, then stop it through the pipeline as Finished.
$Job = New-HpcJob -RunUntilCanceled $True -NumCores "1-3"
$Job | Add-HpcTask -Command "echo Hello World!" | Out-Null
$Job | Submit-HpcJob | Out-Null
WaitFor $Job.Id 'Running'
Show 'Example 3, before (RunUntilCanceled holds its cores)' $Job.Id
$Job | Stop-HpcJob -State "Finished"
Show 'Example 3, after: $Job | Stop-HpcJob -State "Finished"' $Job.Id

# Example 4: stop gracefully: the running task completes, nothing new starts, the job ends Finished.
$gentle = New-HpcJob -Name 'job-27' -NumCores 1
$null = $gentle | Add-HpcTask -CommandLine 'sleep 2; echo done'
$null = $gentle | Add-HpcTask -CommandLine 'echo never started'
$null = $gentle | Submit-HpcJob
WaitFor $gentle.Id 'Running'
Show 'Example 4, before' $gentle.Id
Stop-HpcJob -Id $gentle.Id -Graceful -State "Finished"
Show 'Example 4, right after: Stop-HpcJob -Id <id> -Graceful -State "Finished"' $gentle.Id
WaitFor $gentle.Id 'Finished'
Show 'Example 4, once the running task has completed' $gentle.Id

''
'== What -WhatIf says, and the audit trail'
$waiting = New-HpcJob -Name 'what-if'
$null = $waiting | Add-HpcTask -CommandLine 'true'
Stop-HpcJob -Id $waiting.Id -WhatIf
Get-HpcJobHistory -JobId $busy.Id

using System.Management.Automation;

namespace Trivial
{
    [Cmdlet(VerbsDiagnostic.Ping, "Trivial")]
    public sealed class PingTrivialCommand : PSCmdlet
    {
        protected override void ProcessRecord() => WriteObject(1);
    }
}

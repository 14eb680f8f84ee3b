// A small pwsh-compatible command for machines without pwsh: the real engine
// (System.Management.Automation) behind pwsh's own command line and exit codes.
using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace HpcPwsh
{
    internal sealed class Options
    {
        public bool NonInteractive;
        public string Command;      // script text, or null
        public string File;         // script path, or null
        public readonly List<string> FileArgs = new List<string>();
    }

    internal static class Program
    {
        private const string LastStatementVariable = "__PwshLastStatementSucceeded";

        private static int Main(string[] args)
        {
            // Must be set before any engine type initializer runs, or the engine phones home.
            Environment.SetEnvironmentVariable("POWERSHELL_TELEMETRY_OPTOUT", "1");
            Options options;
            try
            {
                options = Parse(args);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                return 64;
            }
            return Run(options);
        }

        private static Options Parse(string[] args)
        {
            var o = new Options();
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                string name = a.StartsWith("-") || a.StartsWith("/") ? a.TrimStart('-', '/').ToLowerInvariant() : null;
                if (name == null)
                {
                    // pwsh treats a bare first argument as a script file.
                    o.File = a;
                    o.FileArgs.AddRange(args[(i + 1)..]);
                    break;
                }
                switch (name)
                {
                    case "noprofile": case "nop": case "nologo": case "nol": break;
                    case "noninteractive": case "noni": o.NonInteractive = true; break;
                    case "executionpolicy": case "ep": case "ex": i++; break;
                    case "command": case "c":
                        o.Command = i + 1 < args.Length ? string.Join(" ", args[(i + 1)..]) : throw new ArgumentException("Missing argument for parameter -Command.");
                        i = args.Length;
                        break;
                    case "file": case "f":
                        if (i + 1 >= args.Length) throw new ArgumentException("Missing argument for parameter -File.");
                        o.File = args[i + 1];
                        o.FileArgs.AddRange(args[(i + 2)..]);
                        i = args.Length;
                        break;
                    default:
                        throw new ArgumentException($"The argument '{a}' is not recognized as the name of a command-line parameter.");
                }
            }
            if (o.Command == "-" || (o.Command == null && o.File == null))
            {
                o.Command = Console.In.ReadToEnd();
            }
            return o;
        }

        private static int Run(Options options)
        {
            var host = new ConsoleHost(options.NonInteractive);
            var iss = InitialSessionState.CreateDefault2();
            using var runspace = RunspaceFactory.CreateRunspace(host, iss);
            runspace.Open();
            if (Console.IsOutputRedirected || Environment.GetEnvironmentVariable("NO_COLOR") != null)
            {
                PSStyle.Instance.OutputRendering = OutputRendering.PlainText;
            }
            using var ps = PowerShell.Create();
            ps.Runspace = runspace;
            if (options.File != null)
            {
                if (!System.IO.File.Exists(options.File))
                {
                    Console.Error.WriteLine($"The argument '{options.File}' is not recognized as the name of a script file. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.");
                    return 64;
                }
                ps.AddCommand(Path.GetFullPath(options.File));
                AddFileArguments(ps, options.FileArgs);
            }
            else
            {
                // pwsh -Command exits 1 when the script's last statement failed; remember its $?.
                ps.AddScript(options.Command + "\n$global:" + LastStatementVariable + " = $?");
            }
            // As pwsh does: errors join the output so that Out-Default renders both in order.
            ps.Commands.Commands[0].MergeMyResults(PipelineResultTypes.Error, PipelineResultTypes.Output);
            ps.AddCommand("Out-Default");
            try
            {
                ps.Invoke();
            }
            catch (RuntimeException e)
            {
                if (host.ExitCode.HasValue) return host.ExitCode.Value;
                ReportTerminatingError(runspace, e);
                return 1;
            }
            if (host.ExitCode.HasValue) return host.ExitCode.Value;
            // A script's 'exit N' sets $LASTEXITCODE; pwsh -File exits with it.
            if (options.File != null) return runspace.SessionStateProxy.PSVariable.GetValue("LASTEXITCODE") is int code ? code : 0;
            bool lastSucceeded = runspace.SessionStateProxy.PSVariable.GetValue(LastStatementVariable) is bool ok && ok;
            return lastSucceeded ? 0 : 1;
        }

        private static void AddFileArguments(PowerShell ps, List<string> args)
        {
            for (int i = 0; i < args.Count; i++)
            {
                string a = args[i];
                if (a.Length > 1 && a[0] == '-' && !char.IsDigit(a[1]))
                {
                    string name = a.Substring(1).TrimEnd(':');
                    bool hasValue = i + 1 < args.Count && !(args[i + 1].StartsWith("-") && args[i + 1].Length > 1 && !char.IsDigit(args[i + 1][1]));
                    if (hasValue) ps.AddParameter(name, args[++i]);
                    else ps.AddParameter(name);
                }
                else
                {
                    ps.AddArgument(a);
                }
            }
        }

        private static void ReportTerminatingError(Runspace runspace, RuntimeException e)
        {
            // Rendered by the engine's own error view, and written to the error stream so that
            // Out-Default sends it to stderr, as pwsh does.
            using var ps = PowerShell.Create();
            ps.Runspace = runspace;
            ps.AddScript("[CmdletBinding()] param($Record) $PSCmdlet.WriteError($Record)").AddArgument(e.ErrorRecord);
            ps.Commands.Commands[0].MergeMyResults(PipelineResultTypes.Error, PipelineResultTypes.Output);
            ps.AddCommand("Out-Default");
            try
            {
                ps.Invoke();
            }
            catch (RuntimeException)
            {
                Console.Error.WriteLine(e.Message);
            }
        }
    }
}

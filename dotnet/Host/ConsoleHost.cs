// The PSHost of bin/pwsh: writes what pwsh's console host writes, to the same streams,
// and reads confirmation answers from standard input.
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text.RegularExpressions;

namespace HpcPwsh
{
    internal sealed class ConsoleHost : PSHost
    {
        private readonly HostUI _ui;
        private readonly Guid _id = Guid.NewGuid();

        public ConsoleHost(bool nonInteractive)
        {
            _ui = new HostUI(nonInteractive);
        }

        public int? ExitCode { get; private set; }
        public override string Name => "ConsoleHost";
        public override Version Version => new Version(7, 6, 9);
        public override Guid InstanceId => _id;
        public override PSHostUserInterface UI => _ui;
        public override CultureInfo CurrentCulture => CultureInfo.CurrentCulture;
        public override CultureInfo CurrentUICulture => CultureInfo.CurrentUICulture;
        public override void SetShouldExit(int exitCode) => ExitCode = exitCode;
        public override void EnterNestedPrompt() => throw new NotSupportedException("Nested prompts are not supported by this host.");
        public override void ExitNestedPrompt() => throw new NotSupportedException("Nested prompts are not supported by this host.");
        public override void NotifyBeginApplication() { }
        public override void NotifyEndApplication() { }
    }

    internal sealed class HostUI : PSHostUserInterface
    {
        private const string NonInteractiveMessage = "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.";
        private readonly bool _nonInteractive;
        private readonly RawUI _raw = new RawUI();

        public HostUI(bool nonInteractive)
        {
            _nonInteractive = nonInteractive;
        }

        public override PSHostRawUserInterface RawUI => _raw;
        public override bool SupportsVirtualTerminal => false;

        public override void Write(string value) => Console.Out.Write(Plain(value));
        public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Console.Out.Write(Plain(value));
        public override void WriteLine(string value) => Console.Out.WriteLine(Plain(value));
        public override void WriteErrorLine(string value) => Console.Error.WriteLine(Plain(value));
        public override void WriteDebugLine(string message) => Console.Out.WriteLine("DEBUG: " + message);
        public override void WriteVerboseLine(string message) => Console.Out.WriteLine("VERBOSE: " + message);
        public override void WriteWarningLine(string message) => Console.Out.WriteLine("WARNING: " + message);
        public override void WriteInformation(InformationRecord record) { }

        public override void WriteProgress(long sourceId, ProgressRecord record)
        {
            // pwsh draws a bar on an interactive console only; redirected output shows none.
        }

        public override string ReadLine()
        {
            ThrowIfNonInteractive();
            return Console.In.ReadLine();
        }

        public override SecureString ReadLineAsSecureString()
        {
            string line = ReadLine() ?? string.Empty;
            var secure = new SecureString();
            foreach (char c in line) secure.AppendChar(c);
            secure.MakeReadOnly();
            return secure;
        }

        public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions)
        {
            ThrowIfNonInteractive();
            WriteCaption(caption, message);
            var answers = new Dictionary<string, PSObject>();
            foreach (FieldDescription field in descriptions)
            {
                Console.Out.Write(field.Name + ": ");
                string line = Console.In.ReadLine() ?? throw new PromptingException("Standard input was closed before an answer was read.");
                answers[field.Name] = PSObject.AsPSObject(line);
            }
            return answers;
        }

        public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice)
        {
            ThrowIfNonInteractive();
            WriteCaption(caption, message);
            string[] hotkeys = new string[choices.Count];
            var line = new System.Text.StringBuilder();
            for (int i = 0; i < choices.Count; i++)
            {
                (string key, string label) = SplitHotkey(choices[i].Label);
                hotkeys[i] = key;
                line.Append($"[{key}] {label}  ");
            }
            string defaultKey = defaultChoice >= 0 && defaultChoice < choices.Count ? hotkeys[defaultChoice] : null;
            line.Append("[?] Help");
            if (defaultKey != null) line.Append($" (default is \"{defaultKey}\")");
            line.Append(": ");
            while (true)
            {
                Console.Out.Write(line.ToString());
                string answer = Console.In.ReadLine();
                if (answer == null) throw new PromptingException("Standard input was closed before an answer was read.");
                answer = answer.Trim();
                if (answer.Length == 0 && defaultChoice >= 0) return defaultChoice;
                if (answer == "?")
                {
                    for (int i = 0; i < choices.Count; i++) Console.Out.WriteLine($"{hotkeys[i]} - {choices[i].HelpMessage}");
                    continue;
                }
                for (int i = 0; i < choices.Count; i++)
                {
                    if (string.Equals(answer, hotkeys[i], StringComparison.OrdinalIgnoreCase)
                        || string.Equals(answer, SplitHotkey(choices[i].Label).Label, StringComparison.OrdinalIgnoreCase))
                    {
                        return i;
                    }
                }
            }
        }

        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) =>
            PromptForCredential(caption, message, userName, targetName, PSCredentialTypes.Default, PSCredentialUIOptions.Default);

        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName,
            PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options)
        {
            ThrowIfNonInteractive();
            WriteCaption(caption, message);
            if (string.IsNullOrEmpty(userName))
            {
                Console.Out.Write("User: ");
                userName = Console.In.ReadLine();
            }
            Console.Out.Write($"Password for user {userName}: ");
            return new PSCredential(userName, ReadLineAsSecureString());
        }

        // Like pwsh's console host: the formatter decorates text, the host strips it for plain output.
        private static readonly Regex Escapes = new Regex("\x1b\\[[0-9;?]*[ -/]*[@-~]", RegexOptions.Compiled);

        private static string Plain(string value) =>
            value != null && PSStyle.Instance.OutputRendering == OutputRendering.PlainText ? Escapes.Replace(value, string.Empty) : value;

        private static (string Key, string Label) SplitHotkey(string label)
        {
            int amp = label.IndexOf('&');
            if (amp < 0 || amp + 1 >= label.Length) return (label.Substring(0, 1).ToUpperInvariant(), label);
            return (label.Substring(amp + 1, 1).ToUpperInvariant(), label.Remove(amp, 1));
        }

        private static void WriteCaption(string caption, string message)
        {
            if (!string.IsNullOrEmpty(caption)) Console.Out.WriteLine(caption);
            if (!string.IsNullOrEmpty(message)) Console.Out.WriteLine(message);
        }

        private void ThrowIfNonInteractive()
        {
            if (_nonInteractive) throw new PSInvalidOperationException(NonInteractiveMessage);
        }
    }

    internal sealed class RawUI : PSHostRawUserInterface
    {
        private static int Width()
        {
            string columns = Environment.GetEnvironmentVariable("COLUMNS");
            return int.TryParse(columns, out int w) && w > 20 ? w : 120;
        }

        public override ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;
        public override ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;
        public override Size BufferSize { get => new Size(Width(), 9001); set { } }
        public override Coordinates CursorPosition { get; set; }
        public override int CursorSize { get; set; } = 25;
        public override bool KeyAvailable => false;
        public override Size MaxPhysicalWindowSize => new Size(Width(), 100);
        public override Size MaxWindowSize => new Size(Width(), 100);
        public override Coordinates WindowPosition { get; set; }
        public override Size WindowSize { get => new Size(Width(), 100); set { } }
        public override string WindowTitle { get; set; } = "pwsh";
        public override void FlushInputBuffer() { }
        public override BufferCell[,] GetBufferContents(Rectangle rectangle) => throw new NotSupportedException("This host has no screen buffer.");
        public override KeyInfo ReadKey(ReadKeyOptions options) => throw new NotSupportedException("This host cannot read single keys.");
        public override void ScrollBufferContents(Rectangle source, Coordinates destination, Rectangle clip, BufferCell fill) { }
        public override void SetBufferContents(Coordinates origin, BufferCell[,] contents) { }
        public override void SetBufferContents(Rectangle rectangle, BufferCell fill) { }
    }
}

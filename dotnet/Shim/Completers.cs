// Tab completion of parameter values from what the head node knows: job ids (with their names), task
// ids of the job being typed, owners, names, projects, templates, node groups and nodes. Parameters
// name their completer with [ArgumentCompleter(typeof(...))]. A head node that cannot be reached
// completes nothing: typing never shows an error.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>A value to offer: what is inserted, and what the completion list shows for it.</summary>
    public readonly struct Candidate
    {
        public Candidate(string value, string shown = null) { Value = value; Shown = shown ?? value; }
        public string Value { get; }
        public string Shown { get; }
    }

    public abstract class HpcCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string typed = (wordToComplete ?? "").Trim('\'', '"');
            List<Candidate> candidates;
            try
            {
                candidates = Candidates(fakeBoundParameters ?? new Hashtable(), typed).ToList();
            }
            catch (Exception)
            {
                return Array.Empty<CompletionResult>(); // no head node, no permission: nothing to offer
            }
            return candidates
                .Where(c => c.Value.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
                .GroupBy(c => c.Value, StringComparer.OrdinalIgnoreCase).Select(g => g.First())
                .Select(c => new CompletionResult(Quote(c.Value), c.Shown, CompletionResultType.ParameterValue, c.Shown))
                .ToList();
        }

        /// <summary>What to offer for the word typed so far (the values offered begin with it).</summary>
        protected abstract IEnumerable<Candidate> Candidates(IDictionary bound, string typed);

        private static string Quote(string value) =>
            value.Length > 0 && value.All(ch => char.IsLetterOrDigit(ch) || "-_.\\@".IndexOf(ch) >= 0)
                ? value : "'" + value.Replace("'", "''") + "'";

        /// <summary>The head node the command being typed will use: its -Scheduler, else the default.</summary>
        protected static Hashtable Ask(IDictionary bound, params (string Name, object Value)[] values)
        {
            var args = new Hashtable(StringComparer.OrdinalIgnoreCase) { ["Scheduler"] = Scheduler(bound) ?? HpcCmdlet.DefaultScheduler() };
            foreach ((string name, object value) in values) args[name] = value;
            return args;
        }

        private static string[] Scheduler(IDictionary bound) => bound.Contains("Scheduler") switch
        {
            true => LanguagePrimitives.ConvertTo<string[]>(bound["Scheduler"]),
            false => null,
        };

        /// <summary>The distinct values of some job properties that begin with `typed`, sorted: a short list
        /// the backend picks (hpcpack.cmdlets.completion), however many jobs there are.</summary>
        protected static IEnumerable<Candidate> JobValues(IDictionary bound, string typed, params string[] properties) =>
            Backend.Run("Complete-JobValue", Ask(bound, ("Property", properties), ("Typed", typed)))
                .Select(r => new Candidate((string)r["Value"]));
    }

    /// <summary>Job ids, newest first, shown with their name, state and owner: those beginning with what is typed,
    /// of the jobs the cmdlet may act on (which ones, the backend decides: hpcpack.cmdlets.completion).</summary>
    public class JobIdCompleter : HpcCompleter
    {
        /// <summary>What the cmdlet does to the job: "view" offers every job the caller sees; the others (changes)
        /// offer a caller who is not an administrator only their own jobs, in the states that take the change.</summary>
        protected virtual string Purpose => "view";

        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) =>
            Backend.Run("Complete-JobId", Ask(bound, ("For", Purpose), ("Typed", typed)))
                .Select(r => new Candidate((string)r["Value"], (string)r["Shown"]));
    }

    /// <summary>The jobs a change (Set-HpcJob, Add-HpcTask, Export-HpcJob ...) may act on: the caller's own,
    /// or every job for an administrator.</summary>
    public sealed class ChangeableJobIdCompleter : JobIdCompleter
    {
        protected override string Purpose => "change";
    }

    /// <summary>The jobs Stop-HpcJob (and Stop-HpcTask) can stop.</summary>
    public sealed class StoppableJobIdCompleter : JobIdCompleter
    {
        protected override string Purpose => "stop";
    }

    /// <summary>The jobs Submit-HpcJob takes: submitted or requeued.</summary>
    public sealed class SubmittableJobIdCompleter : JobIdCompleter
    {
        protected override string Purpose => "submit";
    }

    /// <summary>Task ids of the job named by -JobId (or -Job), shown with their command lines.</summary>
    public sealed class TaskIdCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed)
        {
            object job = bound.Contains("JobId") ? bound["JobId"] : bound.Contains("Job") ? bound["Job"] : null;
            if (job is PSObject wrapped) job = wrapped.BaseObject;
            if (job is HpcJob given) job = given.Id;
            if (job == null) return Enumerable.Empty<Candidate>();
            int jobId = LanguagePrimitives.ConvertTo<int>(job);
            return Backend.Run("Get-HpcTask", Ask(bound, ("JobId", jobId)))
                .Select(t => Convert.ToString(t["TaskId"], CultureInfo.InvariantCulture))
                .Distinct()
                .Select(id => new Candidate(id, $"{id} ({jobId}.{id})"));
        }
    }

    public sealed class OwnerCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) => JobValues(bound, typed, "Owner");
    }

    public sealed class JobNameCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) => JobValues(bound, typed, "Name");
    }

    public sealed class ProjectCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) => JobValues(bound, typed, "Project");
    }

    /// <summary>Job templates: Default, and every template a job uses.</summary>
    public sealed class TemplateCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) =>
            new[] { new Candidate("Default") }.Concat(JobValues(bound, typed, "Template"));
    }

    public sealed class NodeGroupCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) => JobValues(bound, typed, "NodeGroups");
    }

    /// <summary>Nodes that jobs run on, ask for or exclude.</summary>
    public sealed class NodeCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) =>
            JobValues(bound, typed, "AllocatedNodes", "RequestedNodes", "ExcludedNodes");
    }

    /// <summary>HPC Pack's priority names (a number 0-4000, or Name+N, is accepted too).</summary>
    public sealed class PriorityCompleter : HpcCompleter
    {
        private static readonly string[] Names = { "Highest", "AboveNormal", "Normal", "BelowNormal", "Lowest" };

        protected override IEnumerable<Candidate> Candidates(IDictionary bound, string typed) => Names.Select(n => new Candidate(n));
    }
}

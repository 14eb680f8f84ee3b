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
                candidates = Candidates(fakeBoundParameters ?? new Hashtable()).ToList();
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

        protected abstract IEnumerable<Candidate> Candidates(IDictionary bound);

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

        /// <summary>Every job the caller may see in these states (by default, any).</summary>
        protected static IEnumerable<Dictionary<string, object>> Jobs(IDictionary bound, string states = "All") =>
            Backend.Run("Get-HpcJob", Ask(bound, ("State", states)));

        protected static IEnumerable<string> Texts(object value) => value switch
        {
            null => Enumerable.Empty<string>(),
            string text => text.Split(',').Select(t => t.Trim()),
            IEnumerable many => many.Cast<object>().Select(o => o?.ToString() ?? ""),
            _ => new[] { value.ToString() },
        };

        /// <summary>The distinct non-empty values of some job properties, sorted.</summary>
        protected static IEnumerable<Candidate> JobValues(IDictionary bound, params string[] properties) =>
            Jobs(bound).SelectMany(j => properties.SelectMany(p => j.TryGetValue(p, out object v) ? Texts(v) : Enumerable.Empty<string>()))
                .Where(t => !string.IsNullOrEmpty(t)).Distinct(StringComparer.OrdinalIgnoreCase)
                .OrderBy(t => t, StringComparer.OrdinalIgnoreCase).Select(t => new Candidate(t));
    }

    /// <summary>Job ids, newest first, shown with their name, state and owner.</summary>
    public class JobIdCompleter : HpcCompleter
    {
        /// <summary>The states of the jobs offered (the head node filters: ended jobs are most of a history).</summary>
        protected virtual string States => "All";

        protected override IEnumerable<Candidate> Candidates(IDictionary bound) =>
            Jobs(bound, States).OrderByDescending(j => Convert.ToInt32(j["Id"], CultureInfo.InvariantCulture)).Select(j =>
            {
                string id = Convert.ToString(j["Id"], CultureInfo.InvariantCulture);
                string name = j["Name"] as string;
                return new Candidate(id, $"{id} {(string.IsNullOrEmpty(name) ? "" : name + " ")}({j["State"]}, {j["Owner"]})");
            });
    }

    /// <summary>The jobs Stop-HpcJob can stop: those not started or running (HPC Pack's list, as the head
    /// node's model.states.JOB_CANCELABLE), and Canceling ones (a second stop forces a graceful one).
    /// An ended or Finishing job would only be refused; so would Stop-HpcTask, its tasks having ended.</summary>
    public sealed class StoppableJobIdCompleter : JobIdCompleter
    {
        protected override string States => "Configuring,Submitted,Validating,Queued,Running,Canceling";
    }

    /// <summary>The jobs Submit-HpcJob takes: Configuring ones (submitted) and Canceled or Failed ones (requeued).</summary>
    public sealed class SubmittableJobIdCompleter : JobIdCompleter
    {
        protected override string States => "Configuring,Canceled,Failed";
    }

    /// <summary>Task ids of the job named by -JobId (or -Job), shown with their command lines.</summary>
    public sealed class TaskIdCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound)
        {
            object job = bound.Contains("JobId") ? bound["JobId"] : bound.Contains("Job") ? bound["Job"] : null;
            if (job is PSObject wrapped) job = wrapped.BaseObject;
            if (job is HpcJob typed) job = typed.Id;
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
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) => JobValues(bound, "Owner");
    }

    public sealed class JobNameCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) => JobValues(bound, "Name");
    }

    public sealed class ProjectCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) => JobValues(bound, "Project");
    }

    /// <summary>Job templates: Default, and every template a job uses.</summary>
    public sealed class TemplateCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) =>
            new[] { new Candidate("Default") }.Concat(JobValues(bound, "Template"));
    }

    public sealed class NodeGroupCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) => JobValues(bound, "NodeGroups");
    }

    /// <summary>Nodes that jobs run on, ask for or exclude.</summary>
    public sealed class NodeCompleter : HpcCompleter
    {
        protected override IEnumerable<Candidate> Candidates(IDictionary bound) =>
            JobValues(bound, "AllocatedNodes", "RequestedNodes", "ExcludedNodes");
    }

    /// <summary>HPC Pack's priority names (a number 0-4000, or Name+N, is accepted too).</summary>
    public sealed class PriorityCompleter : HpcCompleter
    {
        private static readonly string[] Names = { "Highest", "AboveNormal", "Normal", "BelowNormal", "Lowest" };

        protected override IEnumerable<Candidate> Candidates(IDictionary bound) => Names.Select(n => new Candidate(n));
    }
}

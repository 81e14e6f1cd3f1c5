using System.Diagnostics;

namespace Mobility.Netlab.Topology;

/// <summary>
/// Removes this process's namespaces even when it is killed with SIGKILL: a detached shell (<c>setsid -f</c>)
/// polls once a second whether this process still lives and, once it is gone, kills whatever runs in the
/// <see cref="LabNames.ProcessPrefix"/> namespaces and deletes them. Normal disposal removes everything earlier;
/// the reaper then finds nothing to do and exits.
/// </summary>
internal static class LabReaper
{
    /// <summary>The reaper gives up after this many one-second polls (one day), so it cannot outlive a hung run forever.</summary>
    public const int MaxPolls = 86_400;

    private const string Script = """
        exec </dev/null >/dev/null 2>&1
        pid=$1; prefix=$2; max=$3; n=0
        while kill -0 "$pid" 2>/dev/null && [ "$n" -lt "$max" ]; do sleep 1; n=$((n+1)); done
        for ns in $(ip netns list | awk '{print $1}'); do
          case "$ns" in
            "$prefix"*) ip netns pids "$ns" | xargs -r kill -9; ip netns del "$ns" ;;
          esac
        done
        """;

    private static readonly Lock Gate = new();
    private static bool s_started;

    public static void EnsureStarted()
    {
        lock (Gate)
        {
            if (s_started)
            {
                return;
            }

            var startInfo = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "-f", "sh", "-c", Script, "netlab-reaper", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), LabNames.ProcessPrefix, MaxPolls.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            {
                startInfo.ArgumentList.Add(argument);
            }

            using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start the namespace reaper");
            if (!process.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                throw new TimeoutException("setsid -f did not return");
            }

            s_started = true;
        }
    }
}

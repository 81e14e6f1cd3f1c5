using System.Diagnostics;
using System.Text.Json;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>
/// Removes what killed runs left behind: <c>mlab-*</c> namespaces (after killing every process still inside them),
/// <c>$TMPDIR/mlab-*</c> folders and <c>mlab*</c> links in the root namespace. By default only leftovers whose owning process is gone are removed,
/// so a cleanup never breaks a run that is still going.
/// </summary>
public static class LabCleanup
{
    /// <summary>Upper bound on namespaces handled in one call, so a runaway cannot keep cleanup busy forever.</summary>
    public const int MaxNamespaces = 4096;

    public static async Task<IReadOnlyList<string>> RunAsync(bool includeLiveOwners = false, TextWriter? log = null)
    {
        var removed = new List<string>();
        foreach (var ns in (await ListNamespacesAsync().ConfigureAwait(false)).Take(MaxNamespaces))
        {
            var owner = LabNames.OwnerOf(ns);
            if (!ns.StartsWith(LabNames.Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            if (!includeLiveOwners && owner is { } pid && IsAlive(pid))
            {
                continue;
            }

            await DeleteNamespaceAsync(ns).ConfigureAwait(false);
            removed.Add(ns);
            log?.WriteLine($"removed namespace {ns}");
        }

        // Temporary folders of the lab (daemon state, sockets: Lab.CreateTemporaryDirectory), named like the namespaces.
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), LabNames.Prefix + "*").Take(MaxNamespaces))
        {
            var name = Path.GetFileName(directory);
            if (LabNames.OwnerOf(name) is not { } pid || (!includeLiveOwners && IsAlive(pid)))
            {
                continue;
            }

            try
            {
                Directory.Delete(directory, recursive: true);
                removed.Add(directory);
                log?.WriteLine($"removed folder {directory}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log?.WriteLine($"could not remove {directory}: {e.Message}");
            }
        }

        foreach (var link in await ListRootLinksAsync().ConfigureAwait(false))
        {
            if (link.StartsWith("mlab", StringComparison.Ordinal))
            {
                await CommandRunner.RunAsync("ip", ["link", "del", link]).ConfigureAwait(false);
                removed.Add(link);
                log?.WriteLine($"removed link {link}");
            }
        }

        return removed;
    }

    /// <summary>Kills every process inside <paramref name="ns"/>, then deletes it. Missing namespaces are fine.</summary>
    public static async Task DeleteNamespaceAsync(string ns)
    {
        var pids = await CommandRunner.RunAsync("ip", ["netns", "pids", ns]).ConfigureAwait(false);
        foreach (var line in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, System.Globalization.CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId)
            {
                TryKill(pid);
            }
        }

        // Deleting the name is enough: veth pairs and TUN devices inside die with the last reference.
        await CommandRunner.RunAsync("ip", ["netns", "del", ns]).ConfigureAwait(false);
    }

    public static async Task<IReadOnlyList<string>> ListNamespacesAsync()
    {
        var result = await CommandRunner.RunAsync("ip", ["netns", "list"]).ConfigureAwait(false);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ', 2)[0])
            .ToList();
    }

    public static async Task<IReadOnlyList<string>> ListRootLinksAsync()
    {
        var result = await CommandRunner.RunAsync("ip", ["-j", "link", "show"]).ConfigureAwait(false);
        if (!result.Succeeded || string.IsNullOrWhiteSpace(result.StandardOutput))
        {
            return [];
        }

        using var json = JsonDocument.Parse(result.StandardOutput);
        return json.RootElement.EnumerateArray()
            .Select(e => e.TryGetProperty("ifname", out var n) ? n.GetString() : null)
            .OfType<string>()
            .ToList();
    }

    private static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}");

    private static void TryKill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
        }
        catch (ArgumentException)
        {
            // Already gone.
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Exited meanwhile.
        }
    }
}

namespace Mobility.Architecture.Tests;

/// <summary>
/// The dependency rules of docs/architecture.md ("Dependencies"), as data. Dependencies point inward:
/// Protocol at the centre, then the shared networking helpers, the API definitions and clients, the
/// libraries of the servers, and the executables outside. A src project may compile against exactly the
/// projects its row lists (a new project needs a row); build-only references (ReferenceOutputAssembly="false",
/// to build an executable that a tool or test starts) are not compiled against and are allowed.
/// </summary>
public static class DependencyRules
{
    private const string Protocol = "Mobility.Protocol";
    private const string Net = "Mobility.Net";
    private const string GnsApi = "Mobility.Gns.Api";
    private const string DaemonApi = "Mobility.Daemon.Api";
    private const string GnsClient = "Mobility.Gns.Client";
    private const string DaemonClient = "Mobility.Daemon.Client";
    private const string Transport = "Mobility.Transport";
    private const string Gns = "Mobility.Gns";
    private const string Daemon = "Mobility.Daemon";

    /// <summary>Each src project and the src projects it may compile against.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        // The centre: wire formats and signed structures, no I/O.
        [Protocol] = [],
        // Shared networking helpers: rate limiter, endpoint parser, signal, expiring cache, SOCKS5 client.
        [Net] = [Protocol],
        // Service definitions (generated code only).
        [GnsApi] = [],
        [DaemonApi] = [],
        // Clients: what every command-line tool and test builds against.
        [GnsClient] = [Protocol, Net, GnsApi],
        [DaemonClient] = [Protocol, Net, DaemonApi],
        [Transport] = [Protocol, Net],
        // Server libraries.
        [Gns] = [Protocol, Net, GnsApi],
        ["Mobility.Gns.Redis"] = [Protocol, Net, Gns],
        ["Mobility.Gns.Dns"] = [Protocol, Net, Gns],
        // The relay: splices by GUID; no transport, no GNS (it never opens a session).
        ["Mobility.Relay"] = [Protocol, Net],
        // The daemon library: no GNS server (the embedded GNS is hosting's).
        [Daemon] = [Protocol, Net, GnsClient, DaemonApi, Transport],
        // Hosting: options, command line, process; the only places that put servers together.
        ["Mobility.Gns.Host"] = [Protocol, Net, Gns, "Mobility.Gns.Redis", "Mobility.Gns.Dns"],
        ["Mobility.Daemon.Host"] = [Protocol, Net, GnsClient, DaemonApi, Transport, Daemon, Gns],
        ["Mobility.Relay.Host"] = [Protocol, Net, "Mobility.Relay"],
        // mob: every command builds against clients only; mob demo (its own project) may use server code.
        ["Mobility.Cli.Demo"] = [Protocol, Net, GnsClient, Transport, Gns, Daemon],
        ["Mobility.Cli"] = [Protocol, Net, GnsClient, DaemonClient, "Mobility.Cli.Demo"],
        // The evaluation harness drives real processes through their clients.
        ["Mobility.Netlab"] = [Protocol, Net, DaemonClient],
        ["Mobility.Netlab.Tool"] = ["Mobility.Netlab"],
    };

    /// <summary>Every broken rule, one line each ("A -> B: why"); empty when the graph keeps them all.</summary>
    public static IReadOnlyList<string> Check(ProjectGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var violations = new List<string>();
        foreach (var project in graph.Projects.Values.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            foreach (var reference in project.References)
            {
                if (!graph.Projects.TryGetValue(reference.Target, out var target))
                {
                    violations.Add($"{project.Name} -> {reference.Target}: no such project under {string.Join(", ", ProjectGraph.Folders)}");
                    continue;
                }

                if (project.Folder == "src" && target.Folder != "src")
                {
                    violations.Add($"{project.Name} -> {target.Name}: src must not reference {target.Folder}/");
                }
                else if (project.Folder == "src" && !reference.BuildOnly && target.Name.EndsWith(".Host", StringComparison.Ordinal))
                {
                    violations.Add($"{project.Name} -> {target.Name}: no src project compiles against a *.Host project");
                }
                else if (project.Folder != "src" && target.Folder == "bench")
                {
                    violations.Add($"{project.Name} -> {target.Name}: nothing references a benchmark");
                }
            }

            if (project.Folder != "src")
            {
                continue;
            }

            if (!Allowed.TryGetValue(project.Name, out var allowed))
            {
                violations.Add($"{project.Name}: no dependency rule (add its row to DependencyRules.Allowed and to docs/architecture.md)");
                continue;
            }

            foreach (var target in project.CodeReferences.Where(t => !allowed.Contains(t, StringComparer.Ordinal)))
            {
                if (graph.Projects.TryGetValue(target, out var node) && node.Folder == "src" && !target.EndsWith(".Host", StringComparison.Ordinal))
                {
                    violations.Add($"{project.Name} -> {target}: not allowed (may reference: {(allowed.Length == 0 ? "nothing" : string.Join(", ", allowed))})");
                }
            }
        }

        return violations;
    }

    /// <summary>The rows of <see cref="Allowed"/> in an order where every project comes after all it may reference; null when they form a cycle.</summary>
    public static IReadOnlyList<string>? LayerOrder()
    {
        var order = new List<string>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        var visiting = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in Allowed.Keys)
        {
            if (!Visit(name))
            {
                return null;
            }
        }

        return order;

        bool Visit(string name)
        {
            if (done.Contains(name))
            {
                return true;
            }

            if (!visiting.Add(name))
            {
                return false;
            }

            foreach (var next in Allowed.TryGetValue(name, out var targets) ? targets : [])
            {
                if (!Visit(next))
                {
                    return false;
                }
            }

            visiting.Remove(name);
            done.Add(name);
            order.Add(name);
            return true;
        }
    }
}

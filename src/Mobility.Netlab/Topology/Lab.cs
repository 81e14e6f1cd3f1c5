using System.Collections.Concurrent;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>
/// Owns the namespaces and processes of one experiment. Disposal kills the processes and deletes the namespaces
/// (which takes their veth pairs, TUN devices, addresses, routes and rules with them). Labs still alive when the
/// process exits are removed by a ProcessExit hook, and by <see cref="LabReaper"/> when the process is killed.
/// </summary>
public sealed class Lab : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<Lab, byte> Live = new();
    private static int s_hooked;

    private readonly List<string> _namespaces = [];
    private readonly List<NamespaceProcess> _processes = [];
    private readonly List<string> _directories = [];
    private readonly Lock _lock = new();
    private int _disposed;

    private Lab(string prefix, TextWriter? log)
    {
        Prefix = prefix;
        Log = log;
    }

    /// <summary>Unique per lab, e.g. <c>mlab-4242-1-</c>; every namespace name starts with it.</summary>
    public string Prefix { get; }

    public TextWriter? Log { get; }

    public IReadOnlyList<string> Namespaces
    {
        get
        {
            lock (_lock)
            {
                return [.. _namespaces];
            }
        }
    }

    public static Lab Create(TextWriter? log = null)
    {
        LabRequirements.CheckRequirements();
        LabReaper.EnsureStarted();
        if (Interlocked.Exchange(ref s_hooked, 1) == 0)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var lab in Live.Keys)
                {
                    lab.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
                }
            };
        }

        var lab = new Lab(LabNames.NewLabPrefix(), log);
        Live.TryAdd(lab, 0);
        return lab;
    }

    /// <summary>
    /// Creates namespace <c>PREFIX+role</c> with loopback up; routers also forward and skip reverse-path filtering.
    /// IPv6 is turned off unless <paramref name="ipv6"/> (then add addresses with <c>nodad</c>, so they are usable at once).
    /// </summary>
    public async Task<string> AddNamespaceAsync(string role, bool router = false, bool ipv6 = false)
    {
        var name = Prefix + role;
        await Ip.RunAsync("netns", "add", name).ConfigureAwait(false);
        lock (_lock)
        {
            _namespaces.Add(name);
        }

        await Ip.InAsync(name, "link", "set", "lo", "up").ConfigureAwait(false);
        // Set before any interface exists, so every interface inherits "default".
        await Ip.SysctlAsync(name, "net.ipv4.conf.all.rp_filter", "0").ConfigureAwait(false);
        await Ip.SysctlAsync(name, "net.ipv4.conf.default.rp_filter", "0").ConfigureAwait(false);
        // IPv4-only topologies by default: no router solicitations or MLD reports crossing the emulated link.
        var disableIpv6 = ipv6 ? "0" : "1";
        await Ip.SysctlAsync(name, "net.ipv6.conf.all.disable_ipv6", disableIpv6).ConfigureAwait(false);
        await Ip.SysctlAsync(name, "net.ipv6.conf.default.disable_ipv6", disableIpv6).ConfigureAwait(false);
        if (router)
        {
            await Ip.SysctlAsync(name, "net.ipv4.ip_forward", "1").ConfigureAwait(false);
        }

        return name;
    }

    /// <summary>A veth pair created directly inside the two namespaces (nothing ever appears in the root namespace).</summary>
    public static Task AddVethAsync(string nsA, string ifA, string nsB, string ifB) =>
        Ip.InAsync(nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB);

    /// <summary>Starts a process inside <paramref name="ns"/>; it is killed when the lab is disposed (or earlier by disposing the handle).</summary>
    public NamespaceProcess StartProcess(string ns, string fileName, IEnumerable<string> arguments, string? readyLine = null,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var process = NamespaceProcess.Start(ns, fileName, arguments, readyLine, environment, workingDirectory);
        lock (_lock)
        {
            _processes.Add(process);
        }

        return process;
    }

    /// <summary>A fresh folder under the temp directory (state of daemons, sockets), deleted after the processes are gone.</summary>
    public string CreateTemporaryDirectory(string role)
    {
        var path = Directory.CreateTempSubdirectory($"{Prefix}{role}-").FullName;
        lock (_lock)
        {
            _directories.Add(path);
        }

        return path;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Live.TryRemove(this, out _);
        NamespaceProcess[] processes;
        string[] namespaces;
        string[] directories;
        lock (_lock)
        {
            processes = [.. _processes];
            namespaces = [.. _namespaces];
            directories = [.. _directories];
        }

        // Keep going whatever fails: a half-removed lab is worse than a late exception.
        var errors = new List<Exception>();
        foreach (var process in processes)
        {
            try
            {
                await process.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException)
            {
                errors.Add(e);
            }
        }

        foreach (var ns in namespaces)
        {
            try
            {
                await LabCleanup.DeleteNamespaceAsync(ns).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException or System.ComponentModel.Win32Exception)
            {
                errors.Add(e);
            }
        }

        foreach (var directory in directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                errors.Add(e);
            }
        }

        if (errors.Count > 0)
        {
            throw new AggregateException($"lab {Prefix} was not removed cleanly", errors);
        }

        Log?.WriteLine($"lab {Prefix} removed ({namespaces.Length} namespaces)");
    }
}

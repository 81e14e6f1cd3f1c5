using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Net.Threading;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// Opportunistic mode across a move of this host. A program's connection to an ordinary address that became a mobile
/// stream keeps, in the program's kernel socket, this host's address of the time as its source (REDIRECT changes only the
/// destination). Once the host loses that address, neither direction gets through: the kernel routes no IPv4 packet from
/// an address the host does not hold, and the daemon's answers to it are routed out to the network. So while such a
/// stream lives, its source address, once the host no longer has it, is held on <c>lo</c> (/32 or /128, deprecated:
/// <c>preferred_lft 0</c>, so the host does not choose it as a source, nor the address monitor publish it while the host
/// has another address of the family), and removed when the last stream from it ends or the daemon stops. The addresses
/// held are listed in &lt;StateDir&gt;/<see cref="StateFile"/> (one per line, the file gone when none is), so a start after a
/// crash (SIGKILL) removes from lo what the crashed daemon held. Linux answers ARP for an address on lo on every link
/// (<c>arp_ignore</c> 0), so while an IPv4 address is held the nftables table <see cref="ArpTable"/> drops ARP requests for
/// it: a network that gives that address to another host keeps it. (Neighbour discovery answers only for the link's own
/// addresses: IPv6 needs nothing.) The table is in place before the address is added and goes with the last one.
/// Events 4450-4455.
/// </summary>
public sealed partial class HeldSourceAddresses : IHostedService, IAsyncDisposable
{
    /// <summary>The addresses held on lo now, one per line; read at start to remove what a crashed daemon left.</summary>
    public const string StateFile = "held-addresses";

    /// <summary>The nftables table (family <c>arp</c>) that keeps the held IPv4 addresses off ARP.</summary>
    public const string ArpTable = "mobility-held";

    private readonly AddressMonitor _addresses;
    private readonly ILogger<HeldSourceAddresses> _logger;
    private readonly string _stateFile;
    private readonly Func<string, string[], string?, CancellationToken, Task> _run;
    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _users = [];
    private readonly HashSet<IPAddress> _held = [];
    private IPAddress[] _arpGuarded = [];
    private readonly AsyncAutoResetSignal _changed = new();
    private readonly CancellationTokenSource _stopping = new();
    private IDisposable? _subscription;
    private Task? _loop;

    public HeldSourceAddresses(IOptions<MobilitydOptions> options, AddressMonitor addresses, ILogger<HeldSourceAddresses> logger)
        : this(options, addresses, logger, static (file, arguments, input, cancellationToken) => ExternalCommand.RunAsync(file, arguments, input, cancellationToken))
    {
    }

    /// <summary>With <paramref name="run"/> running the <c>ip</c> and <c>nft</c> commands (file, arguments, stdin; the tests' recorder).</summary>
    internal HeldSourceAddresses(IOptions<MobilitydOptions> options, AddressMonitor addresses, ILogger<HeldSourceAddresses> logger,
        Func<string, string[], string?, CancellationToken, Task> run)
    {
        ArgumentNullException.ThrowIfNull(options);
        _addresses = addresses;
        _logger = logger;
        _stateFile = Path.Combine(Path.GetFullPath(options.Value.StateDir), StateFile);
        _run = run;
    }

    /// <summary>Removes from lo the addresses a crashed daemon held (the state file's), then forgets them.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        string[] lines;
        try
        {
            lines = await File.ReadAllLinesAsync(_stateFile, cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return;
        }

        var v4 = false;
        foreach (var line in lines)
        {
            if (IPAddress.TryParse(line.Trim(), out var address))
            {
                Log.Recovered(_logger, address);
                await RunAsync("del", address, cancellationToken).ConfigureAwait(false);
                v4 |= address.AddressFamily == AddressFamily.InterNetwork;
            }
        }

        if (v4)
        {
            _arpGuarded = [IPAddress.None]; // Whatever the crashed daemon left: the table goes.
            await GuardArpAsync([], cancellationToken).ConfigureAwait(false);
        }

        File.Delete(_stateFile);
    }

    /// <summary>The daemon stops: every address held is removed (as <see cref="DisposeAsync"/>).</summary>
    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    /// <summary>The addresses held on lo now.</summary>
    public IReadOnlyList<IPAddress> Held
    {
        get
        {
            lock (_gate)
            {
                return [.. _held];
            }
        }
    }

    /// <summary>A stream from a program's socket whose source is <paramref name="source"/> starts; disposing the lease says it ended.</summary>
    public IDisposable Use(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
            {
                return NoLease.Instance;
            }

            _users[source] = _users.GetValueOrDefault(source) + 1;
            if (_loop is null)
            {
                _subscription = _addresses.Subscribe(_changed.Set);
                _loop = Task.Run(RunAsync);
            }
        }

        _changed.Set();
        return new Lease(this, source);
    }

    private void Release(IPAddress source)
    {
        lock (_gate)
        {
            if (_users.TryGetValue(source, out var count))
            {
                if (count <= 1)
                {
                    _users.Remove(source);
                }
                else
                {
                    _users[source] = count - 1;
                }
            }
        }

        _changed.Set();
    }

    private async Task RunAsync()
    {
        try
        {
            while (await _changed.WaitAsync(_stopping.Token).ConfigureAwait(false))
            {
                await ReconcileAsync(_stopping.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Stopping: DisposeAsync removes what is held.
        }
    }

    /// <summary>Holds every used source the host no longer has; lets go of every held one no stream uses any more.</summary>
    private async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        var current = _addresses.Current.Addresses;
        List<IPAddress> hold;
        List<IPAddress> release;
        lock (_gate)
        {
            hold = [.. _users.Keys.Where(a => !_held.Contains(a) && !current.Contains(a))];
            release = [.. _held.Where(a => !_users.ContainsKey(a))];
        }

        if (hold.Count > 0)
        {
            // Listed and kept off ARP before they are on lo, so that a crash at any point leaves nothing unlisted.
            var next = Held.Concat(hold).ToList();
            SaveState(next);
            await GuardArpAsync(next, cancellationToken).ConfigureAwait(false);
        }

        foreach (var address in hold)
        {
            if (await RunAsync("add", address, cancellationToken).ConfigureAwait(false))
            {
                lock (_gate)
                {
                    _held.Add(address);
                }

                Log.Holding(_logger, address);
            }
        }

        foreach (var address in release)
        {
            await RunAsync("del", address, cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                _held.Remove(address);
            }

            Log.Released(_logger, address);
        }

        if (hold.Count > 0 || release.Count > 0)
        {
            await GuardArpAsync(Held, cancellationToken).ConfigureAwait(false);
            SaveState(Held);
        }
    }

    /// <summary>Writes <paramref name="held"/> to the state file (replaced whole), or deletes it when none is held.</summary>
    private void SaveState(IReadOnlyList<IPAddress> held)
    {
        try
        {
            if (held.Count == 0)
            {
                File.Delete(_stateFile);
                return;
            }

            var temporary = _stateFile + ".tmp";
            File.WriteAllLines(temporary, held.Select(a => a.ToString()));
            File.Move(temporary, _stateFile, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.StateFailed(_logger, _stateFile, e.Message);
        }
    }

    /// <summary>The <c>ip addr</c> command that adds or deletes <paramref name="address"/> on lo (its arguments, for the tests).</summary>
    public static string[] Command(string verb, IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        string[] command = [v6 ? "-6" : "-4", "addr", verb, $"{address}/{(v6 ? 128 : 32)}", "dev", "lo"];
        return verb == "add" ? [.. command, "valid_lft", "forever", "preferred_lft", "0"] : command;
    }

    /// <summary>
    /// The nft transaction that makes <see cref="ArpTable"/> drop ARP requests for <paramref name="ipv4"/> (replacing the
    /// table whole), or removes the table when there is none. Both forms succeed whether or not the table exists.
    /// </summary>
    public static string ArpRules(IEnumerable<IPAddress> ipv4)
    {
        ArgumentNullException.ThrowIfNull(ipv4);
        var elements = string.Join(", ", ipv4.Select(a => a.ToString()));
        var rules = $"add table arp {ArpTable}\ndelete table arp {ArpTable}\n";
        return elements.Length == 0 ? rules : rules + $$"""
            table arp {{ArpTable}} {
            	set held {
            		type ipv4_addr
            		elements = { {{elements}} }
            	}
            	chain input {
            		type filter hook input priority filter; policy accept;
            		arp operation request arp daddr ip @held drop
            	}
            }

            """;
    }

    /// <summary>Makes the ARP table drop requests for the IPv4 addresses of <paramref name="held"/>, if that changed.</summary>
    private async Task GuardArpAsync(IEnumerable<IPAddress> held, CancellationToken cancellationToken)
    {
        IPAddress[] ipv4 = [.. held.Where(a => a.AddressFamily == AddressFamily.InterNetwork).OrderBy(a => a.ToString(), StringComparer.Ordinal)];
        if (ipv4.SequenceEqual(_arpGuarded))
        {
            return;
        }

        try
        {
            await _run("nft", ["-f", "-"], ArpRules(ipv4), cancellationToken).ConfigureAwait(false);
            _arpGuarded = ipv4;
        }
        catch (Exception e) when (e is ExternalCommandException or IOException or UnauthorizedAccessException)
        {
            Log.ArpFailed(_logger, string.Join(", ", ipv4.Select(a => a.ToString())), e.Message);
        }
    }

    private async Task<bool> RunAsync(string verb, IPAddress address, CancellationToken cancellationToken)
    {
        try
        {
            await _run("ip", Command(verb, address), null, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is ExternalCommandException or IOException or UnauthorizedAccessException)
        {
            Log.CommandFailed(_logger, verb, address, e.Message);
            return false;
        }
    }

    /// <summary>Stops following the addresses and removes every address held on lo.</summary>
    public async ValueTask DisposeAsync()
    {
        Task? loop;
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
            {
                return;
            }

            _stopping.Cancel();
            loop = _loop;
        }

        _subscription?.Dispose();
        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }

        foreach (var address in Held)
        {
            await RunAsync("del", address, CancellationToken.None).ConfigureAwait(false);
            Log.Released(_logger, address);
        }

        lock (_gate)
        {
            _held.Clear();
        }

        await GuardArpAsync([], CancellationToken.None).ConfigureAwait(false);
        SaveState([]);

        _stopping.Dispose();
    }

    private sealed class Lease(HeldSourceAddresses owner, IPAddress source) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(source);
            }
        }
    }

    private sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();

        public void Dispose()
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4450, LogLevel.Information, "Opportunistic: this host left {Address}, the source of a program's mobile stream; holding it on lo while the stream lives.")]
        public static partial void Holding(ILogger logger, IPAddress address);

        [LoggerMessage(4451, LogLevel.Information, "Opportunistic: {Address} released from lo (no stream from it any more).")]
        public static partial void Released(ILogger logger, IPAddress address);

        [LoggerMessage(4452, LogLevel.Warning, "Opportunistic: ip addr {Verb} {Address} on lo failed: {Error}")]
        public static partial void CommandFailed(ILogger logger, string verb, IPAddress address, string error);

        [LoggerMessage(4453, LogLevel.Information, "Opportunistic: removing {Address} from lo, held by the daemon before it was killed.")]
        public static partial void Recovered(ILogger logger, IPAddress address);

        [LoggerMessage(4454, LogLevel.Warning, "Opportunistic: could not write {File}: {Error}; an address held now stays on lo after a crash.")]
        public static partial void StateFailed(ILogger logger, string file, string error);

        [LoggerMessage(4455, LogLevel.Warning, "Opportunistic: could not set the ARP guard of held addresses (now [{Addresses}]): {Error}; this host may answer ARP for them.")]
        public static partial void ArpFailed(ILogger logger, string addresses, string error);
    }
}

using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace Mobility.Netlab.Topology;

/// <summary>One interface of a host and the subnet it can attach to.</summary>
public sealed class HostInterface(string name, IPAddress address, int prefixLength, IPAddress gateway, int table)
{
    /// <summary>Interface name inside the host namespace (e.g. <c>e1</c>).</summary>
    public string Name { get; } = name;

    /// <summary>The address the host gets when it attaches to this subnet.</summary>
    public IPAddress Address { get; } = address;

    public int PrefixLength { get; } = prefixLength;

    public IPAddress Gateway { get; } = gateway;

    /// <summary>Routing table for traffic sourced from <see cref="Address"/> (multihoming needs source routing).</summary>
    public int Table { get; } = table;

    public bool IsAttached { get; internal set; }

    public override string ToString() => $"{Name} {Address}/{PrefixLength} via {Gateway}";
}

/// <summary>What a move did and when (Stopwatch timestamps), for the scenario's timeline.</summary>
/// <param name="StartedAt">When the change reached the kernel (Stopwatch timestamp): for a move and a loss, when the prepared
/// <c>ip -batch</c> was handed its commands (<see cref="PreparedBatch"/>); elsewhere before the change's process started.</param>
public sealed record MoveRecord(string Host, string? From, string? To, long StartedAt, long LostAt, long AttachedAt)
{
    /// <summary>The address lost when it is not <see cref="From"/>'s configured one (a privacy rotation's old address).</summary>
    public IPAddress? FromAddress { get; init; }

    /// <summary>The address gained when it is not <see cref="To"/>'s configured one (a privacy rotation's temporary address).</summary>
    public IPAddress? ToAddress { get; init; }
}

/// <summary>
/// A host namespace whose interfaces come and go like a laptop's: leaving a network takes the link down and deletes
/// the address (routes through it vanish with it); joining one adds the address, brings the link up, installs the
/// source route and, for the primary interface, the default route.
/// </summary>
public sealed class LabHost(string role, string ns, IReadOnlyList<HostInterface> interfaces)
{
    public string Role { get; } = role;

    public string Namespace { get; } = ns;

    public IReadOnlyList<HostInterface> Interfaces { get; } = interfaces;

    public HostInterface Interface(string name) => Interfaces.FirstOrDefault(i => i.Name == name) ?? throw new ArgumentException($"{Role} has no interface {name}", nameof(name));

    /// <summary>The address of the first attached interface (the one a new connection uses).</summary>
    public IPAddress PrimaryAddress => Interfaces.FirstOrDefault(i => i.IsAttached)?.Address ?? throw new InvalidOperationException($"{Role} has no attached interface");

    /// <summary>Joins the subnet of <paramref name="iface"/>: address, link up, source route, and the default route when <paramref name="makeDefault"/>.</summary>
    public async Task AttachAsync(HostInterface iface, bool makeDefault = true)
    {
        await Ip.BatchAsync(Namespace, AttachCommands(iface, makeDefault), IsIpv6(iface)).ConfigureAwait(false);
        iface.IsAttached = true;
    }

    /// <summary>Leaves the subnet of <paramref name="iface"/>: link down (carrier lost), address deleted, source rule removed.</summary>
    public async Task DetachAsync(HostInterface iface)
    {
        await Ip.BatchAsync(Namespace, DetachCommands(iface), IsIpv6(iface)).ConfigureAwait(false);
        iface.IsAttached = false;
    }

    /// <summary>How long <see cref="LinkUpAsync"/> waits for a link to pass packets.</summary>
    public static readonly TimeSpan LinkUpTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Brings the link of <paramref name="iface"/> up and waits until the kernel reports it operational ("operstate"
    /// UP). A veth pair's carrier comes on at once, but until the kernel's link watch has processed it a device passes
    /// nothing: an address added in the same instant sends its first packets into that gap, and an ARP request the
    /// router answers there is lost, so the host's first packets wait for the next ARP request a second later (seen in
    /// the netlab as a 1.1 s server-move stall about one run in three, docs/evaluation.md). Both ends of the pair come
    /// up in the same link-watch run. An interface that is up already returns at once.
    /// </summary>
    public async Task LinkUpAsync(HostInterface iface, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(iface);
        await Ip.InAsync(Namespace, "link", "set", iface.Name, "up").ConfigureAwait(false);
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            using var doc = JsonDocument.Parse(await Ip.InAsync(Namespace, "-j", "link", "show", "dev", iface.Name).ConfigureAwait(false));
            var link = doc.RootElement.EnumerateArray().FirstOrDefault();
            if (link.ValueKind == JsonValueKind.Object && link.TryGetProperty("operstate", out var state) && state.GetString() == "UP")
            {
                return;
            }

            if (Stopwatch.GetElapsedTime(started) > LinkUpTimeout)
            {
                throw new InvalidOperationException($"{Role}'s {iface.Name} is not operational {LinkUpTimeout.TotalSeconds:0} s after it was set up.");
            }

            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A laptop changing networks: <paramref name="from"/> is lost, <paramref name="to"/> appears (with the default
    /// route) after <paramref name="offline"/>. Without offline time both halves run in one <c>ip -batch</c>.
    /// </summary>
    /// <param name="gate">Moves of other hosts to hand the change to the kernel with (no offline time only): this one waits
    /// there once its new link is up and its iproute2 waits on its input.</param>
    public async Task<MoveRecord> MoveAsync(HostInterface from, HostInterface to, TimeSpan offline = default, CancellationToken cancellationToken = default,
        MoveGate? gate = null)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (offline <= TimeSpan.Zero)
        {
            // The address change's iproute2 starts while the new link comes up, so the change reaches the kernel when
            // the record's StartedAt says (PreparedBatch), not a process start later.
            var cut = PreparedBatch.Start(Namespace, IsIpv6(from));
            var attach = IsIpv6(from) == IsIpv6(to) ? null : PreparedBatch.Start(Namespace, IsIpv6(to));
            long started;
            try
            {
                // The new network's link is up and passing packets before its address arrives, as on a real host (DHCP or
                // a router advertisement gives the address over a working link); the move is the address change alone.
                await LinkUpAsync(to, cancellationToken).ConfigureAwait(false);
                if (gate is not null)
                {
                    await cut.WhenReadyAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                    await gate.ArriveAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                if (attach is null)
                {
                    started = await cut.RunAsync([.. DetachCommands(from), .. AttachCommands(to, makeDefault: true)], cancellationToken: cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    // A move across families: iproute2's batch takes one family for its rules, so one batch per family.
                    started = await cut.RunAsync(DetachCommands(from), cancellationToken: cancellationToken).ConfigureAwait(false);
                    await attach.RunAsync(AttachCommands(to, makeDefault: true), cancellationToken: cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                await cut.DisposeAsync().ConfigureAwait(false);
                if (attach is not null)
                {
                    await attach.DisposeAsync().ConfigureAwait(false);
                }
            }

            from.IsAttached = false;
            to.IsAttached = true;
            var done = Stopwatch.GetTimestamp();
            return new MoveRecord(Role, from.Name, to.Name, started, done, done);
        }

        var began = Stopwatch.GetTimestamp();
        await DetachAsync(from).ConfigureAwait(false);
        var lost = Stopwatch.GetTimestamp();
        await Task.Delay(offline, cancellationToken).ConfigureAwait(false);
        await LinkUpAsync(to, cancellationToken).ConfigureAwait(false);
        await AttachAsync(to, makeDefault: true).ConfigureAwait(false);
        return new MoveRecord(Role, from.Name, to.Name, began, lost, Stopwatch.GetTimestamp());
    }

    /// <summary>
    /// An IPv6 privacy rotation on <paramref name="iface"/> (attached): <paramref name="temporary"/> is added on the same
    /// device with a source rule, and the current address is deprecated (preferred lifetime 0, still valid). Returns the
    /// interface that now stands for the temporary address; <see cref="RetireAsync"/> deletes the old one.
    /// </summary>
    public async Task<(HostInterface Temporary, MoveRecord Move)> RotateAsync(HostInterface iface, IPAddress temporary)
    {
        ArgumentNullException.ThrowIfNull(iface);
        ArgumentNullException.ThrowIfNull(temporary);
        var started = Stopwatch.GetTimestamp();
        var next = new HostInterface(iface.Name, temporary, iface.PrefixLength, iface.Gateway, iface.Table);
        var table = iface.Table.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Ip.BatchAsync(Namespace,
        [
            $"addr add {temporary}/{iface.PrefixLength} dev {iface.Name}",
            $"rule add from {temporary} lookup {table} priority {table}",
            $"addr change {iface.Address}/{iface.PrefixLength} dev {iface.Name} preferred_lft 0",
        ], IsIpv6(iface)).ConfigureAwait(false);
        next.IsAttached = true;
        var done = Stopwatch.GetTimestamp();
        return (next, new MoveRecord(Role, null, iface.Name, started, done, done) { ToAddress = temporary });
    }

    /// <summary>The end of a privacy rotation: the deprecated address of <paramref name="iface"/> and its source rule are deleted; the link stays up.</summary>
    public async Task<MoveRecord> RetireAsync(HostInterface iface)
    {
        ArgumentNullException.ThrowIfNull(iface);
        var started = Stopwatch.GetTimestamp();
        await Ip.BatchAsync(Namespace,
        [
            $"addr del {iface.Address}/{iface.PrefixLength} dev {iface.Name}",
            $"rule del from {iface.Address} lookup {iface.Table.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        ], IsIpv6(iface)).ConfigureAwait(false);
        iface.IsAttached = false;
        var done = Stopwatch.GetTimestamp();
        return new MoveRecord(Role, iface.Name, null, started, done, done) { FromAddress = iface.Address };
    }

    /// <summary>The addresses of the attached interfaces, in interface order.</summary>
    public IReadOnlyList<IPAddress> AttachedAddresses => [.. Interfaces.Where(i => i.IsAttached).Select(i => i.Address)];

    /// <summary>A new network appears while the others stay: <paramref name="iface"/> is attached and takes the default route.</summary>
    public async Task<MoveRecord> JoinAsync(HostInterface iface, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(iface);
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        await AttachAsync(iface, makeDefault: true).ConfigureAwait(false);
        var done = Stopwatch.GetTimestamp();
        return new MoveRecord(Role, null, iface.Name, started, done, done);
    }

    /// <summary>A multihomed host loses one of its interfaces; the default route moves to a remaining one.</summary>
    public async Task<MoveRecord> LoseAsync(HostInterface lost, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lost);
        cancellationToken.ThrowIfCancellationRequested();
        var remaining = Interfaces.FirstOrDefault(i => i.IsAttached && i != lost);
        IEnumerable<string> commands = DetachCommands(lost);
        if (remaining is not null)
        {
            commands = commands.Append($"route replace default via {remaining.Gateway} dev {remaining.Name}");
        }

        // StartedAt: when the loss reached the kernel, iproute2 started and waiting for it (PreparedBatch).
        var cut = PreparedBatch.Start(Namespace, IsIpv6(lost));
        long started;
        await using (cut.ConfigureAwait(false))
        {
            started = await cut.RunAsync(commands, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        lost.IsAttached = false;
        var done = Stopwatch.GetTimestamp();
        return new MoveRecord(Role, lost.Name, remaining?.Name, started, done, done);
    }

    /// <summary>An IPv6 interface's commands run as <c>ip -6</c> (its source rule is IPv6).</summary>
    private static bool IsIpv6(HostInterface iface) => iface.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;

    private static List<string> AttachCommands(HostInterface iface, bool makeDefault)
    {
        ArgumentNullException.ThrowIfNull(iface);
        var table = iface.Table.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var commands = new List<string>
        {
            $"addr add {iface.Address}/{iface.PrefixLength} dev {iface.Name}",
            $"link set {iface.Name} up",
            $"route replace default via {iface.Gateway} dev {iface.Name} table {table}",
            $"rule add from {iface.Address} lookup {table} priority {table}",
        };
        if (makeDefault)
        {
            commands.Add($"route replace default via {iface.Gateway} dev {iface.Name}");
        }

        return commands;
    }

    private static List<string> DetachCommands(HostInterface iface)
    {
        ArgumentNullException.ThrowIfNull(iface);
        return
        [
            $"link set {iface.Name} down",
            $"addr del {iface.Address}/{iface.PrefixLength} dev {iface.Name}",
            $"rule del from {iface.Address} lookup {iface.Table.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        ];
    }

    /// <summary>The IPv4 addresses currently configured (from <c>ip -j addr</c>), without loopback.</summary>
    public async Task<IReadOnlyList<(string Interface, IPAddress Address)>> GetAddressesAsync()
    {
        var json = await Ip.InAsync(Namespace, "-j", "-4", "addr", "show").ConfigureAwait(false);
        using var doc = JsonDocument.Parse(json);
        var list = new List<(string, IPAddress)>();
        foreach (var link in doc.RootElement.EnumerateArray())
        {
            var name = link.GetProperty("ifname").GetString() ?? "";
            if (name == "lo" || !link.TryGetProperty("addr_info", out var infos))
            {
                continue;
            }

            foreach (var info in infos.EnumerateArray())
            {
                if (info.TryGetProperty("local", out var local) && IPAddress.TryParse(local.GetString(), out var address))
                {
                    list.Add((name, address));
                }
            }
        }

        return list;
    }

    /// <summary>The gateway and device of the main table's default route, or null when there is none.</summary>
    public async Task<(IPAddress Gateway, string Device)?> GetDefaultRouteAsync()
    {
        var json = await Ip.InAsync(Namespace, "-j", "-4", "route", "show", "default").ConfigureAwait(false);
        using var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(json) ? "[]" : json);
        foreach (var route in doc.RootElement.EnumerateArray())
        {
            if (route.TryGetProperty("gateway", out var gw) && IPAddress.TryParse(gw.GetString(), out var gateway))
            {
                return (gateway, route.GetProperty("dev").GetString() ?? "");
            }
        }

        return null;
    }
}

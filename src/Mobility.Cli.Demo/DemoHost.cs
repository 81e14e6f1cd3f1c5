using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Peers;
using Mobility.Daemon.Records;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Cli.Demo;

/// <summary>What one host's move did: from where to where, where it listens now, and which address change it was.</summary>
/// <param name="Generation">The address change; <see cref="DemoHost.WaitPublishedAsync"/> waits for its record.</param>
public sealed record HostMove(string Host, IPAddress From, IPAddress To, IPEndPoint Listening, long Generation);

/// <summary>
/// One host of the demo, made of mobilityd's own parts: its identity (a fresh Ed25519 key in its
/// state folder), the <see cref="AddressMonitor"/> holding its fixed address, the
/// <see cref="RecordPublisher"/> that publishes a new signed record after every address change, the
/// <see cref="GnsPeerLocator"/> (GNS lookup + watch) its outgoing connections re-resolve through, and
/// a <see cref="MobileListener"/> / <see cref="MobileConnector"/> pair. A move does what mobilityd's
/// forwarder does when the OS reports an address change: the listener moves to the new address and
/// drops the flows of the old one, outgoing connections drop their flows and resume from the new
/// address, and the record publisher tells the GNS.
/// </summary>
public sealed class DemoHost : IAsyncDisposable
{
    /// <summary>How long the first registration may take before the demo gives up.</summary>
    private static readonly TimeSpan RegisterTimeout = TimeSpan.FromSeconds(10);

    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly GnsClient _gns;
    private readonly RecordPublisher _publisher;
    private readonly WatchedRecords _records;
    private readonly GnsPeerLocator _locator;
    private readonly MobileListener _listener;
    private readonly MobileConnector _connector;
    private IPAddress _address;
    private IPEndPoint? _listening;
    private bool _publisherStarted;

    private DemoHost(string name, string stateDir, IPAddress address, EmbeddedGns gns, ILoggerFactory loggers)
    {
        Name = name;
        _address = address;
        _options = new MobilitydOptions
        {
            StateDir = stateDir,
            Name = name,
            Addresses = [address.ToString()],
            AllowLoopback = true,
            TransportPort = 0,
        };
        var options = Options.Create(_options);
        var time = TimeProvider.System;
        _identity = new DaemonIdentity(options);
        _addresses = new AddressMonitor(options, time, loggers.CreateLogger<AddressMonitor>());
        _gns = new GnsClient(new GnsClientOptions { Server = gns.Udp, GrpcAddress = gns.Grpc, LoggerFactory = loggers });
        _publisher = new RecordPublisher(options, _identity, _addresses, _gns, time, loggers.CreateLogger<RecordPublisher>());
        _records = new WatchedRecords(_gns, new PeerBook(options), options, time, loggers.CreateLogger<WatchedRecords>());
        _locator = new GnsPeerLocator(_records);
        _listener = new MobileListener(_identity.Key, new MobileListenerOptions { LoggerFactory = loggers });
        _connector = new MobileConnector(_identity.Key, new MobileConnectionOptions { LocalAddress = address, LoggerFactory = loggers });
    }

    public string Name { get; }

    public HostGuid Guid => _identity.Guid;

    /// <summary>The host's current address (loopback).</summary>
    public IPAddress Address => Volatile.Read(ref _address);

    /// <summary>Where the mobile transport listens now (the last endpoint, also after dispose: the display may still ask).</summary>
    public IPEndPoint Listening => Volatile.Read(ref _listening) ?? new IPEndPoint(Address, 0);

    /// <summary>The version of the record last stored in the GNS.</summary>
    public ulong RecordVersion => _publisher.State.Version;

    /// <summary>GNS lookups and watch pushes of peers (raises <see cref="IPeerLocator.EndpointsChanged"/>).</summary>
    public GnsPeerLocator Locator => _locator;

    /// <summary>This host's GNS client (for name lookups).</summary>
    public IGnsClient Gns => _gns;

    /// <summary>Creates the host's identity in <paramref name="stateDir"/>, starts listening and registers the record by name.</summary>
    public static async Task<DemoHost> StartAsync(string name, string stateDir, IPAddress address, EmbeddedGns gns, ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var host = new DemoHost(name, stateDir, address, gns, loggers);
        try
        {
            await host.StartCoreAsync(cancellationToken);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>Listens for a connection from a peer.</summary>
    public ValueTask<MobileConnection> AcceptAsync(CancellationToken cancellationToken) => _listener.AcceptAsync(cancellationToken);

    /// <summary>Opens a mobile connection to <paramref name="peer"/>, resolved by GUID through the GNS at connection time.</summary>
    public Task<MobileConnection> ConnectAsync(HostGuid peer, CancellationToken cancellationToken)
        => _connector.ConnectAsync(peer, _locator, cancellationToken);

    /// <summary>
    /// Moves to <paramref name="to"/>, as if the old address had vanished: the address monitor changes
    /// (the record publisher wakes), the listener moves and drops the flows on the old address, and
    /// outgoing connections drop theirs and resume from the new one. Returns once the sockets moved;
    /// the record is published in the background (<see cref="WaitPublishedAsync"/>).
    /// </summary>
    public async Task<HostMove> MoveAsync(IPAddress to)
    {
        var from = Address;
        var snapshot = _addresses.SetFixed([to]);
        var port = _listener.LocalEndPoint.Port;
        IPEndPoint listening;
        try
        {
            listening = await _listener.RebindAsync(new IPEndPoint(to, port));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            // Someone holds our port on the new address: any port will do, the record carries it.
            listening = await _listener.RebindAsync(new IPEndPoint(to, 0));
            _options.TransportPort = listening.Port;
            _publisher.Republish();
        }

        _connector.NotifyLocalAddressChanged(to);
        Volatile.Write(ref _listening, listening);
        Volatile.Write(ref _address, to);
        return new HostMove(Name, from, to, listening, snapshot.Generation);
    }

    /// <summary>Waits until the record of address change <paramref name="generation"/> is stored in the GNS; false on timeout.</summary>
    public Task<bool> WaitPublishedAsync(long generation, TimeSpan timeout, CancellationToken cancellationToken)
        => _publisher.WaitPublishedAsync(generation, timeout, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        // Watches first, so the GNS is not left waiting on open streams when it stops.
        await _locator.DisposeAsync();
        await _records.DisposeAsync();
        if (_publisherStarted)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _publisher.StopAsync(stop.Token);
        }

        _publisher.Dispose();
        foreach (var connection in _connector.Connections)
        {
            await connection.DisposeAsync();
        }

        await _listener.DisposeAsync();
        await _gns.DisposeAsync();
        _addresses.Dispose();
        _identity.Dispose();
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        _listener.Start(new IPEndPoint(_address, 0));
        Volatile.Write(ref _listening, _listener.LocalEndPoint);
        // The record carries the port really bound, as mobilityd's forwarder arranges.
        _options.TransportPort = _listener.LocalEndPoint.Port;
        await _publisher.StartAsync(cancellationToken);
        _publisherStarted = true;
        if (!await _publisher.WaitPublishedAsync(_addresses.Current.Generation, RegisterTimeout, cancellationToken))
        {
            throw new DemoException(DemoFailure.Unreachable,
                $"{Name} could not register in the embedded GNS within {RegisterTimeout.TotalSeconds:0} s: {_publisher.State.Error ?? "no answer"}");
        }
    }
}

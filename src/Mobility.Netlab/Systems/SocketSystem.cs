using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Systems;

/// <summary>Creates sockets inside a namespace; the socket stays in that namespace whichever thread uses it later.</summary>
public static class LabSockets
{
    /// <summary><c>IPPROTO_MPTCP</c> from linux/in.h.</summary>
    public const ProtocolType Mptcp = (ProtocolType)262;

    public static Socket Create(string ns, ProtocolType protocol) => Create(ns, protocol, AddressFamily.InterNetwork);

    /// <summary>A socket of <paramref name="family"/>; an IPv6 socket is dual-mode (it also reaches and accepts IPv4).</summary>
    public static Socket Create(string ns, ProtocolType protocol, AddressFamily family) =>
        NetworkNamespace.Run(ns, () =>
        {
            var socket = protocol == Mptcp ? CreateMptcp(family) : new Socket(family, SocketType.Stream, protocol);
            if (family == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = true;
            }

            return socket;
        });

    /// <summary>The family a topology's sockets use: IPv6 (dual-mode) as soon as any host has IPv6.</summary>
    public static AddressFamily FamilyOf(EvaluationTopology topology)
    {
        ArgumentNullException.ThrowIfNull(topology);
        return topology.Network == LabNetwork.Ipv4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
    }

    /// <summary>
    /// .NET's Socket constructor only passes protocols it knows to socket(2) (262 fails with "Protocol not
    /// supported"), so the MPTCP socket is made with libc and wrapped.
    /// </summary>
    private static Socket CreateMptcp(AddressFamily family)
    {
        var fd = Libc.Socket(family == AddressFamily.InterNetworkV6 ? Libc.AfInet6 : Libc.AfInet, Libc.SockStream | Libc.SockCloExec, (int)Mptcp);
        if (fd < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }
}

/// <summary>A connection backed by a kernel socket; no move detection of its own.</summary>
internal sealed class SocketConnection(Socket socket) : IScenarioConnection
{
    public Socket Socket { get; } = socket;

    public Stream Stream { get; } = new NetworkStream(socket, ownsSocket: true);

    public long? MoveDetectedAt => null;

    public ValueTask DisposeAsync() => Stream.DisposeAsync();
}

internal sealed class SocketListener(Socket socket) : IScenarioListener
{
    public async Task<IScenarioConnection> AcceptAsync(CancellationToken cancellationToken)
    {
        var accepted = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
        accepted.NoDelay = true;
        return new SocketConnection(accepted);
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Shared plumbing of the kernel-socket baselines: listen and connect with a given IP protocol.</summary>
public abstract class SocketSystem(ProtocolType protocol) : IScenarioSystem
{
    public abstract string Name { get; }

    public virtual string? Unsupported(Scenario scenario) =>
        scenario is { MeasuresPeerFreshness: true } ? "no name service: a peer's address is whatever the application was given" : null;

    public virtual Task PrepareAsync(EvaluationTopology topology, Scenario scenario, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IScenarioListener> ListenAsync(EvaluationTopology topology, int port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        var family = LabSockets.FamilyOf(topology);
        var socket = LabSockets.Create(topology.Server.Namespace, protocol, family);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, port));
            socket.Listen(16);
            return Task.FromResult<IScenarioListener>(new SocketListener(socket));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async Task<IScenarioConnection> ConnectAsync(EvaluationTopology topology, IPEndPoint server, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        var socket = LabSockets.Create(topology.Client.Namespace, protocol, LabSockets.FamilyOf(topology));
        try
        {
            socket.NoDelay = true;
            await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
            return new SocketConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public virtual Task OnMovedAsync(EvaluationTopology topology, MoveRecord move, CancellationToken cancellationToken) => Task.CompletedTask;

    public virtual Task<string?> DescribeRunAsync(EvaluationTopology topology, CancellationToken cancellationToken) => Task.FromResult<string?>(null);
}

/// <summary>Plain TCP: nothing reacts to a move; the connection stays bound to the old address.</summary>
public sealed class PlainTcpSystem() : SocketSystem(ProtocolType.Tcp)
{
    public override string Name => "tcp";
}

/// <summary>The baselines (plain TCP, MPTCP).</summary>
public static class BaselineSystems
{
    public static IReadOnlyList<IScenarioSystem> All() => [new PlainTcpSystem(), new MptcpSystem()];
}

/// <summary>Every system the evaluation compares: the baselines and Mobility (gns + mobilityd processes).</summary>
public static class EvaluationSystems
{
    public static IReadOnlyList<IScenarioSystem> All() => [.. BaselineSystems.All(), new Mobility.MobilitySystem()];
}

using System.Buffers;
using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Nat;

/// <summary>
/// Sends the Reflect datagrams of one check (docs/protocol.md, "Reflect") and collects the answers; the verdict is
/// <see cref="NatClassifier"/>'s. Per family: one socket asks the first GNS endpoint that answers, its other port and the other GNS
/// addresses (the mapping test); a second socket asks the first endpoint to answer from its other port (the
/// filtering test: that socket has no mapping towards the other port, so only a NAT that does not filter by port lets
/// the answer in). Every probe is a 16-byte datagram, sent again after <see cref="NatOptions.ProbeTimeout"/> up to
/// <see cref="NatOptions.Attempts"/> times; answers are matched by a random request id and the server's address.
/// </summary>
public sealed class NatProber(NatOptions options, TimeProvider time)
{
    /// <summary>The largest reflect reply is 30 bytes; anything larger than a GNS datagram is not one.</summary>
    private const int ReceiveBufferSize = GnsDatagram.MaxDatagramSize + 1;

    /// <summary>Probes every family that has a server in <paramref name="servers"/> (at once); the first server of a family is its primary.</summary>
    public async Task<ImmutableArray<NatFamilyProbes>> ProbeAsync(IReadOnlyList<IPEndPoint> servers, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(servers);
        var families = servers
            .Select(s => new IPEndPoint(Locator.Normalize(s.Address), s.Port))
            .GroupBy(s => s.AddressFamily)
            .Select(g => ProbeFamilyAsync(g.Key, [.. g.Distinct().Take(Math.Max(1, options.MaxServersPerFamily))], cancellationToken))
            .ToArray();
        return [.. await Task.WhenAll(families).ConfigureAwait(false)];
    }

    private async Task<NatFamilyProbes> ProbeFamilyAsync(AddressFamily family, IReadOnlyList<IPEndPoint> servers, CancellationToken cancellationToken)
    {
        Socket mapping, filter;
        try
        {
            mapping = Open(family);
        }
        catch (SocketException)
        {
            // The family is off in this kernel (IPv6 disabled): no answer for it, the other family is still checked.
            return new NatFamilyProbes(family, null, new NatProbe(servers[0], null), null, [], null);
        }

        using var mappingSocket = mapping;
        using var filterSocket = filter = Open(family);

        // The first endpoint that answers is the primary (as the GNS endpoint choice, a silent one is passed over).
        GnsResponse? answer = null;
        var first = servers[0];
        foreach (var server in servers)
        {
            first = server;
            answer = await ExchangeAsync(mapping, server, 0, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                break;
            }
        }

        var local = LocalEndPoint(mapping, first);
        if (answer is null)
        {
            return new NatFamilyProbes(family, local, new NatProbe(servers[0], null), null, [], null);
        }

        // The filtering probe runs beside the mapping probes: it waits out its timeouts when the NAT filters.
        var filterTask = answer.OtherPort == 0
            ? Task.FromResult<GnsResponse?>(null)
            : Task.Run(() => ExchangeAsync(filter, first, GnsDatagram.ReflectFromOtherPort, cancellationToken), CancellationToken.None);
        NatProbe? otherPort = null;
        if (answer.OtherPort != 0)
        {
            var other = new IPEndPoint(first.Address, answer.OtherPort);
            otherPort = new NatProbe(other, (await ExchangeAsync(mapping, other, 0, cancellationToken).ConfigureAwait(false))?.Observed);
        }

        var otherAddresses = ImmutableArray.CreateBuilder<NatProbe>();
        foreach (var server in servers.Where(s => !s.Address.Equals(first.Address)))
        {
            otherAddresses.Add(new NatProbe(server, (await ExchangeAsync(mapping, server, 0, cancellationToken).ConfigureAwait(false))?.Observed));
        }

        var filtered = await filterTask.ConfigureAwait(false);
        // Not tested when the server has no other port (it would answer from the same port, flag clear).
        bool? filterReceived = answer.OtherPort == 0 ? null : filtered is { ReflectFlags: GnsDatagram.ReflectFromOtherPort };
        return new NatFamilyProbes(family, local, new NatProbe(first, answer.Observed), otherPort, otherAddresses.ToImmutable(), filterReceived);
    }

    private static Socket Open(AddressFamily family)
    {
        var socket = new Socket(family, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The probe socket's address as the kernel chooses it towards <paramref name="server"/> (a connected twin sends nothing), with its port.</summary>
    private static IPEndPoint? LocalEndPoint(Socket socket, IPEndPoint server)
    {
        try
        {
            using var twin = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            twin.Connect(server);
            var address = ((IPEndPoint)twin.LocalEndPoint!).Address;
            return new IPEndPoint(Locator.Normalize(address), ((IPEndPoint)socket.LocalEndPoint!).Port);
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>One reflect exchange: the parsed answer, or null when none came (or the path refused the datagram).</summary>
    private async Task<GnsResponse?> ExchangeAsync(Socket socket, IPEndPoint server, byte flags, CancellationToken cancellationToken)
    {
        var id = BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4));
        var request = GnsDatagram.Reflect(id, flags);
        var buffer = ArrayPool<byte>.Shared.Rent(ReceiveBufferSize);
        try
        {
            for (var attempt = 0; attempt < Math.Max(1, options.Attempts); attempt++)
            {
                try
                {
                    await socket.SendToAsync(request, SocketFlags.None, server, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    return null; // no route, no address of this family: nothing will answer
                }

                using var timeout = new CancellationTokenSource(options.ProbeTimeout, time);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                if (await ReceiveAsync(socket, buffer, server.Address, id, wait.Token).ConfigureAwait(false) is { } reply)
                {
                    return reply;
                }

                cancellationToken.ThrowIfCancellationRequested();
            }

            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads until the answer to <paramref name="id"/> from <paramref name="from"/> arrives (null when <paramref name="cancellationToken"/> ends the wait); anything else is dropped.</summary>
    private static async Task<GnsResponse?> ReceiveAsync(Socket socket, byte[] buffer, IPAddress from, uint id, CancellationToken cancellationToken)
    {
        var any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (true)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer.AsMemory(0, ReceiveBufferSize), SocketFlags.None, any, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
            catch (SocketException)
            {
                // An ICMP error for an earlier send (port unreachable): wait on for the real answer or the timeout.
                continue;
            }

            if (received.RemoteEndPoint is not IPEndPoint source || !Locator.Normalize(source.Address).Equals(from))
            {
                continue;
            }

            try
            {
                var reply = GnsDatagram.ParseResponse(buffer.AsSpan(0, received.ReceivedBytes));
                if (reply.RequestId == id && reply.Type == GnsMessageType.ReflectReply)
                {
                    return reply with { Observed = new IPEndPoint(Locator.Normalize(reply.Observed!.Address), reply.Observed.Port) };
                }
            }
            catch (MalformedMessageException)
            {
                // Not a reply we can read: dropped.
            }
        }
    }
}

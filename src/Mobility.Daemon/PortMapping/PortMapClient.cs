using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol;
using Mobility.Protocol.PortMapping;

namespace Mobility.Daemon.PortMapping;

/// <summary>
/// What the port mapper asks a gateway for: one port, one transport. Lifetime zero deletes the mapping. A renewal or a
/// delete names the protocol that granted it and the external endpoint held (UPnP renews and deletes by external port).
/// </summary>
public sealed record MappingRequest(
    IPEndPoint Gateway, MappedTransport Transport, ushort InternalPort, TimeSpan Lifetime, PcpNonce Nonce, PortMappingProtocol? Protocol,
    IPEndPoint? External = null);

/// <summary>What the gateway granted: the outside endpoint, for how long, and its epoch (seconds since it lost its state).</summary>
public sealed record GatewayMapping(PortMappingProtocol Protocol, IPEndPoint External, TimeSpan Lifetime, uint Epoch);

/// <summary>The gateway refused, or never answered; the message says which.</summary>
public class PortMappingException(string message) : Exception(message);

/// <summary>Asks a gateway for one mapping: the seam between <see cref="PortMapper"/>'s schedule and the network.</summary>
public interface IPortMapGateway
{
    Task<GatewayMapping> MapAsync(MappingRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// PCP and NAT-PMP over UDP (RFC 6887, RFC 6886): a fresh socket connected to the gateway for each exchange, so the
/// kernel delivers datagrams from the gateway's address and port only; a reply that does not answer the request (another
/// nonce, opcode, transport or port) or does not parse is dropped, and the request is sent again after
/// <c>Nat:ProbeTimeout</c>, <c>Nat:Attempts</c> times. PCP first; NAT-PMP when the gateway answers "unsupported version"
/// or does not answer PCP at all; UPnP IGD (<see cref="UpnpClient"/>) when it answers neither. Once UPnP worked at a
/// gateway, a new request there tries UPnP first (and the whole order again if UPnP fails).
/// </summary>
public sealed class PortMapClient(TimeSpan probeTimeout, int attempts, UpnpClient? upnp = null) : IPortMapGateway, IDisposable
{
    private readonly ConcurrentDictionary<IPAddress, bool> _upnpGateways = new();

    public async Task<GatewayMapping> MapAsync(MappingRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Protocol == PortMappingProtocol.Upnp)
        {
            return upnp is null ? throw new PortMappingException("UPnP is not spoken here") : await upnp.MapAsync(request, cancellationToken).ConfigureAwait(false);
        }

        if (request.Protocol is null && upnp is not null && _upnpGateways.ContainsKey(request.Gateway.Address))
        {
            try
            {
                return await upnp.MapAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (PortMappingException)
            {
                _upnpGateways.TryRemove(request.Gateway.Address, out _);
            }
        }

        try
        {
            return await MapPcpOrNatPmpAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (NoAnswerException) when (upnp is not null && request.Protocol is null)
        {
            try
            {
                var mapping = await upnp.MapAsync(request, cancellationToken).ConfigureAwait(false);
                _upnpGateways[request.Gateway.Address] = true;
                return mapping;
            }
            catch (PortMappingException e)
            {
                throw new PortMappingException($"no PCP, NAT-PMP or UPnP answer from {request.Gateway.Address} ({e.Message})");
            }
        }
    }

    public void Dispose() => upnp?.Dispose();

    private async Task<GatewayMapping> MapPcpOrNatPmpAsync(MappingRequest request, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(request.Gateway, cancellationToken).ConfigureAwait(false);
        var local = ((IPEndPoint)socket.LocalEndPoint!).Address;
        var lifetime = (uint)request.Lifetime.TotalSeconds;
        if (request.Protocol != PortMappingProtocol.NatPmp)
        {
            var pcp = await ExchangeAsync(socket, PortMappingMessage.WritePcpMap(local, request.Nonce, request.Transport, request.InternalPort, request.InternalPort, lifetime),
                r => r.Protocol == PortMappingProtocol.NatPmp ? r.ResultCode == PortMappingMessage.UnsupportedVersion
                    : r.Opcode == PortMappingMessage.PcpOpMap && r.Nonce == request.Nonce && r.Transport == request.Transport && r.InternalPort == request.InternalPort,
                cancellationToken).ConfigureAwait(false);
            if (pcp is { Protocol: PortMappingProtocol.Pcp })
            {
                if (!pcp.Succeeded)
                {
                    throw new PortMappingException($"PCP MAP refused by {request.Gateway}: {PcpResultName(pcp.ResultCode)}");
                }

                return new GatewayMapping(PortMappingProtocol.Pcp, new IPEndPoint(pcp.ExternalAddress!, pcp.ExternalPort), TimeSpan.FromSeconds(pcp.Lifetime), pcp.Epoch);
            }

            if (request.Protocol == PortMappingProtocol.Pcp)
            {
                throw new PortMappingException($"no PCP answer from {request.Gateway}");
            }
        }

        // NAT-PMP: the public address first (its mapping reply does not carry it), then the mapping.
        var opcode = PortMappingMessage.NatPmpOpcode(request.Transport);
        var address = await ExchangeAsync(socket, PortMappingMessage.WriteNatPmpPublicAddress(),
            r => r.Protocol == PortMappingProtocol.NatPmp && r.Opcode == PortMappingMessage.NatPmpOpPublicAddress, cancellationToken).ConfigureAwait(false)
            ?? throw new NoAnswerException($"no PCP or NAT-PMP answer from {request.Gateway}");
        if (!address.Succeeded || address.ExternalAddress is null)
        {
            throw new PortMappingException($"NAT-PMP public address refused by {request.Gateway}: {NatPmpResultName(address.ResultCode)}");
        }

        var deleting = lifetime == 0;
        var map = await ExchangeAsync(socket, PortMappingMessage.WriteNatPmpMap(request.Transport, request.InternalPort, deleting ? (ushort)0 : request.InternalPort, lifetime),
            r => r.Protocol == PortMappingProtocol.NatPmp && r.Opcode == opcode && (!r.Succeeded || r.InternalPort == request.InternalPort), cancellationToken).ConfigureAwait(false)
            ?? throw new PortMappingException($"no NAT-PMP mapping answer from {request.Gateway}");
        if (!map.Succeeded)
        {
            throw new PortMappingException($"NAT-PMP mapping refused by {request.Gateway}: {NatPmpResultName(map.ResultCode)}");
        }

        return new GatewayMapping(PortMappingProtocol.NatPmp, new IPEndPoint(address.ExternalAddress, map.ExternalPort), TimeSpan.FromSeconds(map.Lifetime), map.Epoch);
    }

    /// <summary>Sends <paramref name="request"/> up to <c>attempts</c> times; the first reply <paramref name="answers"/> accepts, or null.</summary>
    private async Task<PortMappingReply?> ExchangeAsync(Socket socket, byte[] request, Func<PortMappingReply, bool> answers, CancellationToken cancellationToken)
    {
        var buffer = new byte[PortMappingMessage.PcpMaxLength + 4];
        for (var attempt = 0; attempt < attempts; attempt++)
        {
            await socket.SendAsync(request, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(probeTimeout.Multiply(1 << attempt));
            try
            {
                while (true)
                {
                    var n = await socket.ReceiveAsync(buffer, SocketFlags.None, wait.Token).ConfigureAwait(false);
                    if (TryParse(buffer.AsSpan(0, n)) is { } reply && answers(reply))
                    {
                        return reply;
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                // ICMP port unreachable: nothing listens on the gateway's port. Asking again would only repeat it.
                return null;
            }
        }

        return null;
    }

    private static PortMappingReply? TryParse(ReadOnlySpan<byte> datagram)
    {
        try
        {
            return PortMappingMessage.ParseReply(datagram);
        }
        catch (MalformedMessageException)
        {
            return null;
        }
    }

    /// <summary>Neither PCP nor NAT-PMP answered: the one failure after which UPnP is tried.</summary>
    private sealed class NoAnswerException(string message) : PortMappingException(message);

    /// <summary>RFC 6887 section 7.4's result codes by name.</summary>
    public static string PcpResultName(int code) => code switch
    {
        1 => "UNSUPP_VERSION",
        2 => "NOT_AUTHORIZED",
        3 => "MALFORMED_REQUEST",
        4 => "UNSUPP_OPCODE",
        5 => "UNSUPP_OPTION",
        6 => "MALFORMED_OPTION",
        7 => "NETWORK_FAILURE",
        8 => "NO_RESOURCES",
        9 => "UNSUPP_PROTOCOL",
        10 => "USER_EX_QUOTA",
        11 => "CANNOT_PROVIDE_EXTERNAL",
        12 => "ADDRESS_MISMATCH",
        13 => "EXCESSIVE_REMOTE_PEERS",
        _ => $"result {code}",
    };

    /// <summary>RFC 6886 section 3.5's result codes by name.</summary>
    public static string NatPmpResultName(int code) => code switch
    {
        1 => "unsupported version",
        2 => "not authorized / refused",
        3 => "network failure",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => $"result {code}",
    };
}

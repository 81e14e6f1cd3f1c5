using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Protocol.Transport;

/// <summary>Where a direct candidate comes from.</summary>
public enum DirectCandidateKind : byte
{
    /// <summary>An address of one of the sender's own interfaces, with its transport port.</summary>
    Local = 1,

    /// <summary>The sender's reflexive endpoint as NAT discovery saw it (the NAT's outside address and port).</summary>
    Reflexive = 2,

    /// <summary>An endpoint the sender's gateway maps to its transport port (PCP / NAT-PMP).</summary>
    Mapped = 3,
}

/// <summary>One endpoint at which the sender may be reachable directly.</summary>
public readonly record struct DirectCandidate(DirectCandidateKind Kind, IPEndPoint EndPoint);

/// <summary>
/// The body of a CANDIDATES frame (type 8), sent over an established session (sealed like every
/// frame, so only the peer can have written it):
/// <c>flags u8 | count u8 | count x (kind u8 | family u8 (4 or 6) | port u16 | address (4 or 16 bytes))</c>.
/// Flag bit 0 (<see cref="PunchFlag"/>): the sender's NAT maps independently of the destination, so it
/// takes part in a simultaneous open from its transport port; bit 1 (<see cref="PunchFramesFlag"/>): the
/// sender takes PUNCH frames (type 9); bit 2 (<see cref="FirstFlightGapsFlag"/>): the sender drops a resumed path's
/// first-flight gap instead of failing the connection; bit 3 (<see cref="StandbyGapsFlag"/>): the same for the resend on a
/// standby path the client switched to; the other bits are sent as 0 and ignored.
/// </summary>
public static class DirectCandidates
{
    /// <summary>
    /// At most 8 candidates in a frame: a host has a handful of addresses, one reflexive and one mapped
    /// endpoint; the cap bounds what one frame can make the receiver dial.
    /// </summary>
    public const int MaxCount = 8;

    /// <summary>Largest candidate entry: kind, family, port, IPv6 address.</summary>
    public const int MaxEntryLength = 4 + 16;

    /// <summary>Largest CANDIDATES body: 2 + 8 x 20 = 162 bytes.</summary>
    public const int MaxBodyLength = 2 + (MaxCount * MaxEntryLength);

    /// <summary>Flag bit 0: the sender's NAT maps endpoint-independently (it can punch).</summary>
    public const byte PunchFlag = 0x01;

    /// <summary>
    /// Flag bit 1: the sender takes PUNCH frames (a peer that does not would fail the path on an unknown
    /// frame type); set by the connection, not by <see cref="Write"/>.
    /// </summary>
    public const byte PunchFramesFlag = 0x02;

    /// <summary>
    /// Flag bit 2: the sender, as a server, drops the DATA of a resumed path's first flight that starts beyond its receive
    /// position (the client rewinds to the ResumeAck's) instead of failing the connection on the gap. A client starts a
    /// first flight beyond its last ACK only for a server that set it (a server of an earlier release fails on the gap);
    /// set by the connection, not by <see cref="Write"/>.
    /// </summary>
    public const byte FirstFlightGapsFlag = 0x04;

    /// <summary>
    /// Flag bit 3: the sender, as a server, drops the DATA on a standby path the client switched to that starts beyond its
    /// receive position (the client rewinds to the position the server's first ACK on that path names) instead of failing
    /// the connection on the gap. A client that lost its active path with its own address resends on the standby from
    /// where that path's bytes stopped leaving its host, not from its last ACK, only for a server that set it; set by the
    /// connection, not by <see cref="Write"/>.
    /// </summary>
    public const byte StandbyGapsFlag = 0x08;

    /// <summary>Size of the body for <paramref name="candidates"/>.</summary>
    public static int BodyLength(IReadOnlyList<DirectCandidate> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var length = 2;
        foreach (var candidate in candidates)
        {
            length += 4 + AddressLength(candidate.EndPoint.Address);
        }

        return length;
    }

    /// <summary>Writes the body into <paramref name="destination"/> and returns its length.</summary>
    /// <exception cref="ArgumentException">More than <see cref="MaxCount"/> candidates, or one that <see cref="Read"/> would refuse.</exception>
    public static int Write(bool punch, IReadOnlyList<DirectCandidate> candidates, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count > MaxCount)
        {
            throw new ArgumentException($"At most {MaxCount} direct candidates.", nameof(candidates));
        }

        var length = BodyLength(candidates);
        if (destination.Length < length)
        {
            throw new ArgumentException("Destination too small for the candidates.", nameof(destination));
        }

        destination[0] = punch ? PunchFlag : (byte)0;
        destination[1] = (byte)candidates.Count;
        var position = 2;
        foreach (var candidate in candidates)
        {
            var address = Plain(candidate.EndPoint.Address);
            if (!Enum.IsDefined(candidate.Kind) || candidate.EndPoint.Port == 0 || !Usable(address))
            {
                throw new ArgumentException($"Direct candidate {candidate} cannot be sent.", nameof(candidates));
            }

            destination[position] = (byte)candidate.Kind;
            destination[position + 1] = address.AddressFamily == AddressFamily.InterNetwork ? (byte)4 : (byte)6;
            BinaryPrimitives.WriteUInt16BigEndian(destination[(position + 2)..], (ushort)candidate.EndPoint.Port);
            address.TryWriteBytes(destination[(position + 4)..], out var written);
            position += 4 + written;
        }

        return position;
    }

    /// <summary>The body as bytes (tests and the frame writer's callers).</summary>
    public static byte[] Encode(bool punch, IReadOnlyList<DirectCandidate> candidates)
    {
        var body = new byte[BodyLength(candidates)];
        Write(punch, candidates, body);
        return body;
    }

    /// <summary>
    /// Reads a CANDIDATES body. Throws <see cref="MalformedMessageException"/> for a body outside
    /// [2, <see cref="MaxBodyLength"/>], a count over <see cref="MaxCount"/>, an unknown kind or
    /// family, port 0, an unspecified, multicast, broadcast or IPv4-mapped IPv6 address, or bytes left over.
    /// </summary>
    public static (bool Punch, DirectCandidate[] Candidates) Read(ReadOnlySpan<byte> body)
    {
        if (body.Length is < 2 or > MaxBodyLength)
        {
            throw new MalformedMessageException($"A CANDIDATES body cannot have {body.Length} bytes.");
        }

        var count = body[1];
        if (count > MaxCount)
        {
            throw new MalformedMessageException($"{count} direct candidates, at most {MaxCount}.");
        }

        var candidates = new DirectCandidate[count];
        var position = 2;
        for (var i = 0; i < count; i++)
        {
            if (body.Length - position < 4)
            {
                throw new MalformedMessageException("Truncated direct candidate.");
            }

            var kind = (DirectCandidateKind)body[position];
            if (!Enum.IsDefined(kind))
            {
                throw new MalformedMessageException($"Unknown direct candidate kind {body[position]}.");
            }

            var addressLength = body[position + 1] switch
            {
                4 => 4,
                6 => 16,
                var family => throw new MalformedMessageException($"Unknown address family {family} in a direct candidate."),
            };
            var port = BinaryPrimitives.ReadUInt16BigEndian(body[(position + 2)..]);
            position += 4;
            if (body.Length - position < addressLength)
            {
                throw new MalformedMessageException("Truncated direct candidate address.");
            }

            var address = new IPAddress(body.Slice(position, addressLength));
            position += addressLength;
            if (port == 0 || !Usable(address))
            {
                throw new MalformedMessageException($"Direct candidate {address}:{port} is not a unicast endpoint.");
            }

            candidates[i] = new DirectCandidate(kind, new IPEndPoint(address, port));
        }

        if (position != body.Length)
        {
            throw new MalformedMessageException($"{body.Length - position} bytes after the direct candidates.");
        }

        return ((body[0] & PunchFlag) != 0, candidates);
    }

    private static IPAddress Plain(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static int AddressLength(IPAddress address) => Plain(address).AddressFamily == AddressFamily.InterNetwork ? 4 : 16;

    private static bool Usable(IPAddress address)
    {
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast)
            || address.IsIPv6Multicast || address.IsIPv4MappedToIPv6)
        {
            return false;
        }

        return address.AddressFamily != AddressFamily.InterNetwork || address.GetAddressBytes()[0] is < 224 or > 239;
    }
}

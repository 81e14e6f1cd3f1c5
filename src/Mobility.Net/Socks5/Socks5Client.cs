using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Forwarding;

namespace Mobility.Net.Socks5;

/// <summary>
/// The client side of SOCKS5 (RFC 1928) as mobilityd's endpoint speaks it: no authentication, CONNECT
/// to a domain name or an address (messages in <see cref="Socks5Parser"/>, byte by byte in docs/protocol.md).
/// The greeting and the request go out together (one round trip); the answers are read exactly, so the
/// application's first bytes after the reply stay in the socket. The caller bounds the time with its token.
/// </summary>
public static class Socks5Client
{
    /// <summary>
    /// Asks the SOCKS5 server on <paramref name="socket"/> (connected) for <paramref name="host"/>:<paramref name="port"/>;
    /// returns the server's reply code (<see cref="Socks5Reply.Succeeded"/>: the socket now carries the stream).
    /// </summary>
    /// <exception cref="Socks5FormatException">The server refused "no authentication" or answered malformed bytes.</exception>
    /// <exception cref="IOException">The server closed the connection before answering.</exception>
    public static Task<Socks5Reply> ConnectAsync(Socket socket, string host, ushort port, CancellationToken cancellationToken)
        => ExchangeAsync(socket, Socks5Parser.ConnectRequest(host, port), cancellationToken);

    /// <summary>As <see cref="ConnectAsync(Socket, string, ushort, CancellationToken)"/>, for an address (ATYP 1 or 4).</summary>
    public static Task<Socks5Reply> ConnectAsync(Socket socket, IPAddress address, ushort port, CancellationToken cancellationToken)
        => ExchangeAsync(socket, Socks5Parser.ConnectRequest(address, port), cancellationToken);

    /// <summary>
    /// Connects a new socket to <paramref name="socks"/> (from <paramref name="create"/>, default: a TCP socket
    /// of its family with Nagle off) and asks for <paramref name="host"/>:<paramref name="port"/>; a reply other
    /// than success throws <see cref="Socks5ReplyException"/>. The socket is disposed on every failure.
    /// </summary>
    public static async Task<Socket> OpenAsync(IPEndPoint socks, string host, ushort port, CancellationToken cancellationToken,
        Func<IPEndPoint, Socket>? create = null)
    {
        ArgumentNullException.ThrowIfNull(socks);
        var socket = create?.Invoke(socks) ?? new Socket(socks.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(socks, cancellationToken).ConfigureAwait(false);
            var reply = await ConnectAsync(socket, host, port, cancellationToken).ConfigureAwait(false);
            return reply == Socks5Reply.Succeeded ? socket : throw new Socks5ReplyException(reply, $"{host}:{port}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<Socks5Reply> ExchangeAsync(Socket socket, byte[] request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        await socket.SendAsync((byte[])[.. Socks5Parser.Greeting(), .. request], SocketFlags.None, cancellationToken).ConfigureAwait(false);

        var buffer = new byte[Socks5Parser.MaxRequestSize];
        await ReceiveExactlyAsync(socket, buffer.AsMemory(0, 2), cancellationToken).ConfigureAwait(false);
        var selection = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, 0, 2));
        Socks5Parser.TryReadMethodSelection(ref selection, out var method);
        if (method != Socks5Parser.NoAuthentication)
        {
            throw new Socks5FormatException($"The SOCKS5 server does not accept \"no authentication\" (it chose method {method}).");
        }

        await ReceiveExactlyAsync(socket, buffer.AsMemory(0, Socks5Parser.ReplyPrefixSize), cancellationToken).ConfigureAwait(false);
        var length = Socks5Parser.ReplyLength(buffer.AsSpan(0, Socks5Parser.ReplyPrefixSize));
        await ReceiveExactlyAsync(socket, buffer.AsMemory(Socks5Parser.ReplyPrefixSize, length - Socks5Parser.ReplyPrefixSize), cancellationToken)
            .ConfigureAwait(false);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, 0, length));
        if (!Socks5Parser.TryReadReply(ref reader, out var reply))
        {
            throw new Socks5FormatException("The SOCKS5 reply is incomplete.");
        }

        return reply;
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer[filled..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("The SOCKS5 server closed the connection before it answered.");
            }

            filled += read;
        }
    }
}

/// <summary>The SOCKS5 server answered a CONNECT with a failure <see cref="Reply"/>.</summary>
public sealed class Socks5ReplyException : IOException
{
    public Socks5ReplyException(Socks5Reply reply, string target)
        : base($"SOCKS5 CONNECT to {target} failed: {reply} ({(byte)reply}).")
    {
        Reply = reply;
    }

    public Socks5ReplyException()
    {
    }

    public Socks5ReplyException(string message) : base(message)
    {
    }

    public Socks5ReplyException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public Socks5Reply Reply { get; }
}

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mobility.Netlab.Systems.Mobility;

/// <summary>The few bytes of RFC 1928 an unmodified SOCKS5 application sends: no authentication, CONNECT to a domain name.</summary>
public static class Socks5Client
{
    /// <summary>Asks the SOCKS5 server on <paramref name="socket"/> (already connected) for <paramref name="host"/>:<paramref name="port"/>.</summary>
    public static async Task ConnectAsync(Socket socket, string host, int port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(host);
        var name = Encoding.ASCII.GetBytes(host);
        if (name.Length is 0 or > 255)
        {
            throw new ArgumentException("a SOCKS5 domain name has 1 to 255 bytes", nameof(host));
        }

        await socket.SendAsync(new byte[] { 5, 1, 0 }, cancellationToken).ConfigureAwait(false);
        var method = await ReceiveExactlyAsync(socket, 2, cancellationToken).ConfigureAwait(false);
        if (method[0] != 5 || method[1] != 0)
        {
            throw new IOException($"SOCKS5 server refused the no-authentication method ({method[0]}, {method[1]})");
        }

        var request = new byte[7 + name.Length];
        request[0] = 5;
        request[1] = 1; // CONNECT
        request[3] = 3; // domain name
        request[4] = (byte)name.Length;
        name.CopyTo(request, 5);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(5 + name.Length), checked((ushort)port));
        await socket.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var reply = await ReceiveExactlyAsync(socket, 4, cancellationToken).ConfigureAwait(false);
        if (reply[1] != 0)
        {
            throw new IOException($"SOCKS5 CONNECT to {host}:{port} failed with reply {reply[1]}");
        }

        var rest = reply[3] switch
        {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => (await ReceiveExactlyAsync(socket, 1, cancellationToken).ConfigureAwait(false))[0] + 2,
            _ => throw new IOException($"SOCKS5 reply with address type {reply[3]}"),
        };
        await ReceiveExactlyAsync(socket, rest, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<Socket> ConnectAsync(IPEndPoint socks, string ns, string host, int port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socks);
        var socket = LabSockets.Create(ns, ProtocolType.Tcp);
        try
        {
            socket.NoDelay = true;
            await socket.ConnectAsync(socks, cancellationToken).ConfigureAwait(false);
            await ConnectAsync(socket, host, port, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("SOCKS5 server closed the connection");
            }

            filled += read;
        }

        return buffer;
    }
}

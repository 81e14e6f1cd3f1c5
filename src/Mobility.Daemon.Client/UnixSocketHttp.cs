using System.Net;
using System.Net.Sockets;

namespace Mobility.Daemon.Client;

/// <summary>The one place that builds HTTP clients for mobilityd's Unix socket (HTTP/1.1, or h2c for gRPC).</summary>
public static class UnixSocketHttp
{
    /// <summary>The base address of every request: the host part is not used, the socket is.</summary>
    public static Uri BaseAddress { get; } = new("http://mobilityd/");

    /// <summary>A handler whose every connection is a new stream connected to <paramref name="socketPath"/>.</summary>
    public static SocketsHttpHandler CreateHandler(string socketPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(socketPath);
        return new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
    }

    /// <summary>An <see cref="HttpClient"/> on <paramref name="socketPath"/> (HTTP/1.1, or h2c only when <paramref name="http2"/>).</summary>
    public static HttpClient CreateClient(string socketPath, TimeSpan timeout, bool http2 = false)
    {
        var client = new HttpClient(CreateHandler(socketPath)) { BaseAddress = BaseAddress, Timeout = timeout };
        if (http2)
        {
            client.DefaultRequestVersion = HttpVersion.Version20;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }
}

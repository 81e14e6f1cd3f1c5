using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Mobility.Netlab.Systems.Mobility;

/// <summary>mobilityd's HTTP/JSON API over its Unix socket (what <c>mob</c> and <c>curl --unix-socket</c> use).</summary>
public sealed class DaemonApiClient : IDisposable
{
    private readonly HttpClient _http;

    public DaemonApiClient(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://mobilityd/"), Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <summary><c>POST /v1/exposed</c>, as <c>mob expose PORT</c> does.</summary>
    public async Task ExposeAsync(int port, CancellationToken cancellationToken)
    {
        using var response = await _http.PostAsJsonAsync("v1/exposed", new Dictionary<string, int> { ["port"] = port }, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
    }

    /// <summary><c>PUT /v1/addresses</c>, as <c>mob addresses set IP...</c> does: answers once the GNS stored the new record (or after the daemon's wait).</summary>
    public async Task SetAddressesAsync(IReadOnlyList<string> addresses, CancellationToken cancellationToken)
    {
        using var response = await _http.PutAsJsonAsync("v1/addresses", new Dictionary<string, IReadOnlyList<string>> { ["addresses"] = addresses }, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
    }

    /// <summary><c>GET /v1/ip/{guid}</c>: the addresses the GNS holds for a GUID (empty when it has no record).</summary>
    public async Task<IReadOnlyList<string>> GetIpAsync(string guid, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(new Uri("v1/ip/" + guid, UriKind.Relative), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.ServiceUnavailable)
        {
            return [];
        }

        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        return json.RootElement.TryGetProperty("addresses", out var addresses)
            ? [.. addresses.EnumerateArray().Select(a => a.GetString() ?? "")]
            : [];
    }

    /// <summary><c>GET /v1/status</c> as raw JSON.</summary>
    public Task<string> GetStatusAsync(CancellationToken cancellationToken) => _http.GetStringAsync(new Uri("v1/status", UriKind.Relative), cancellationToken);

    public void Dispose() => _http.Dispose();
}

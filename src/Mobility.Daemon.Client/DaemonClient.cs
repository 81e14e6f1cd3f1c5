using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Mobility.Daemon.Client;

/// <summary>
/// mobilityd's HTTP/JSON API over its Unix socket (the routes of docs/mobilityd.md), one method per route.
/// Each answer is the daemon's JSON object as it came (what <c>mob --json</c> prints); failures are
/// <see cref="DaemonApiException"/>s whose message names the socket or carries the daemon's own message.
/// </summary>
public sealed class DaemonClient : IDisposable
{
    /// <summary>The default wait for one answer (a challenge or a GNS lookup behind it included).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(15);

    private readonly HttpClient _http;

    public DaemonClient(string socketPath, TimeSpan? timeout = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(socketPath);
        SocketPath = socketPath;
        Timeout = timeout ?? DefaultTimeout;
        _http = UnixSocketHttp.CreateClient(socketPath, Timeout);
    }

    public string SocketPath { get; }

    public TimeSpan Timeout { get; }

    /// <summary><c>GET /v1/self</c>: this host's GUID and name.</summary>
    public Task<JsonElement> GetSelfAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/self", null, cancellationToken);

    /// <summary><c>GET /v1/ip/{guid or name}</c>: the addresses the GNS holds.</summary>
    public Task<JsonElement> GetIpAsync(string target, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Get, "v1/ip/" + Uri.EscapeDataString(target), null, cancellationToken);

    /// <summary>The addresses of <see cref="GetIpAsync"/>; empty when the GNS has no record (404) or cannot be asked (503).</summary>
    public async Task<IReadOnlyList<string>> GetIpAddressesAsync(string target, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await GetIpAsync(target, cancellationToken).ConfigureAwait(false);
            return reply.TryGetProperty("addresses", out var addresses) && addresses.ValueKind == JsonValueKind.Array
                ? [.. addresses.EnumerateArray().Select(a => a.GetString() ?? "")]
                : [];
        }
        catch (DaemonApiException e) when (e.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.ServiceUnavailable)
        {
            return [];
        }
    }

    /// <summary><c>GET /v1/guids/{ip}</c>: get_guid_from_ip.</summary>
    public Task<JsonElement> GetGuidsAsync(string address, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Get, "v1/guids/" + Uri.EscapeDataString(address), null, cancellationToken);

    /// <summary><c>POST /v1/challenge</c>: does the holder of <paramref name="guid"/> answer at <paramref name="address"/> (IP or IP:PORT)?</summary>
    public Task<JsonElement> ChallengeAsync(string address, string guid, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Post, "v1/challenge", new Dictionary<string, string> { ["address"] = address, ["guid"] = guid }, cancellationToken);

    /// <summary><c>GET /v1/status</c>.</summary>
    public Task<JsonElement> GetStatusAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/status", null, cancellationToken);

    /// <summary><c>POST /v1/netcheck</c>: the daemon checks its NAT now and answers with the result (docs/nat.md).</summary>
    public Task<JsonElement> NetcheckAsync(CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Post, "v1/netcheck", new Dictionary<string, string>(), cancellationToken);

    /// <summary><c>GET /v1/addresses</c>.</summary>
    public Task<JsonElement> GetAddressesAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/addresses", null, cancellationToken);

    /// <summary><c>PUT /v1/addresses</c> (socket owner or root).</summary>
    public Task<JsonElement> SetAddressesAsync(IReadOnlyList<string> addresses, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Put, "v1/addresses", new Dictionary<string, IReadOnlyList<string>> { ["addresses"] = addresses }, cancellationToken);

    /// <summary><c>POST /v1/exposed</c> (socket owner or root); an empty <paramref name="allow"/> lets every authenticated peer in.</summary>
    public Task<JsonElement> ExposeAsync(int port, IReadOnlyList<string>? allow, CancellationToken cancellationToken)
        => ExposeAsync(port, allow, udp: false, cancellationToken);

    /// <summary><c>POST /v1/exposed</c> with <c>"udp": true</c> for the UDP port.</summary>
    public Task<JsonElement> ExposeAsync(int port, IReadOnlyList<string>? allow, bool udp, CancellationToken cancellationToken)
        => ExposeAsync(port, allow, udp, source: null, cancellationToken);

    /// <summary>
    /// <c>POST /v1/exposed</c> with the <paramref name="source"/> address the application sees for a peer: "virtual" (the peer's
    /// virtual address), "local" (127.0.0.1), or null for the daemon's default (virtual while transparent mode is on).
    /// </summary>
    public Task<JsonElement> ExposeAsync(int port, IReadOnlyList<string>? allow, bool udp, string? source, CancellationToken cancellationToken)
    {
        var body = new Dictionary<string, object> { ["port"] = port, ["allow"] = allow ?? [], ["udp"] = udp };
        if (source is not null)
        {
            body["source"] = source;
        }

        return SendAsync(HttpMethod.Post, "v1/exposed", body, cancellationToken);
    }

    /// <summary><c>DELETE /v1/exposed/{port}</c> (socket owner or root).</summary>
    public Task<JsonElement> UnexposeAsync(int port, CancellationToken cancellationToken) => UnexposeAsync(port, udp: false, cancellationToken);

    /// <summary><c>DELETE /v1/exposed/{port}</c>, with <c>?udp=true</c> for the UDP port.</summary>
    public Task<JsonElement> UnexposeAsync(int port, bool udp, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Delete, "v1/exposed/" + port.ToString(CultureInfo.InvariantCulture) + (udp ? "?udp=true" : ""), null, cancellationToken);

    /// <summary><c>POST /v1/forwards/udp</c> (socket owner or root): the daemon forwards 127.0.0.1:<paramref name="localPort"/> (0: a free port) to <paramref name="host"/>'s UDP <paramref name="port"/>.</summary>
    public Task<JsonElement> StartUdpForwardAsync(int localPort, string host, int port, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Post, "v1/forwards/udp", new Dictionary<string, object> { ["localPort"] = localPort, ["host"] = host, ["port"] = port }, cancellationToken);

    /// <summary><c>DELETE /v1/forwards/udp/{localPort}</c> (socket owner or root).</summary>
    public Task<JsonElement> StopUdpForwardAsync(int localPort, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Delete, "v1/forwards/udp/" + localPort.ToString(CultureInfo.InvariantCulture), null, cancellationToken);

    /// <summary><c>GET /v1/forwards/udp</c>.</summary>
    public Task<JsonElement> ListUdpForwardsAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/forwards/udp", null, cancellationToken);

    /// <summary><c>GET /v1/exposed</c>.</summary>
    public Task<JsonElement> ListExposedAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/exposed", null, cancellationToken);

    /// <summary><c>GET /v1/transparent</c>.</summary>
    public Task<JsonElement> GetTransparentAsync(CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, "v1/transparent", null, cancellationToken);

    /// <summary><c>PUT /v1/transparent</c>: switches transparent mode on or off.</summary>
    public Task<JsonElement> SetTransparentAsync(bool enabled, CancellationToken cancellationToken)
        => SetTransparentAsync(enabled, opportunistic: null, cancellationToken);

    /// <summary><c>PUT /v1/transparent</c>; <paramref name="opportunistic"/> null leaves it to the daemon's option.</summary>
    public Task<JsonElement> SetTransparentAsync(bool enabled, bool? opportunistic, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Put, "v1/transparent", opportunistic is { } o
            ? new Dictionary<string, bool> { ["enabled"] = enabled, ["opportunistic"] = o }
            : new Dictionary<string, bool> { ["enabled"] = enabled }, cancellationToken);

    public void Dispose() => _http.Dispose();

    /// <summary>Why the socket could not be used, in words (the errno text of a missing socket is "Cannot assign requested address").</summary>
    private string Explain(HttpRequestException e)
    {
        if (!File.Exists(SocketPath))
        {
            return "no such socket (is mobilityd running?)";
        }

        return (e.InnerException as System.Net.Sockets.SocketException)?.SocketErrorCode switch
        {
            System.Net.Sockets.SocketError.ConnectionRefused => "nothing listens on the socket (is mobilityd running?)",
            System.Net.Sockets.SocketError.AccessDenied => "permission denied (the socket's group may read the API)",
            _ => e.InnerException?.Message ?? e.Message,
        };
    }

    /// <summary>Sends one request; the answer's JSON, or a <see cref="DaemonApiException"/>.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new DaemonApiException(DaemonApiFailure.Unreachable, null, $"mobilityd is not reachable at {SocketPath}: {Explain(e)}", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DaemonApiException(DaemonApiFailure.Timeout, null,
                $"mobilityd at {SocketPath} did not answer within {Timeout.TotalSeconds:0} s", e);
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            JsonElement json;
            try
            {
                using var document = JsonDocument.Parse(string.IsNullOrWhiteSpace(text) ? "{}" : text);
                json = document.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new DaemonApiException(DaemonApiFailure.NotJson, response.StatusCode,
                    $"mobilityd answered {(int)response.StatusCode} with something that is not JSON", e);
            }

            if (response.IsSuccessStatusCode)
            {
                return json;
            }

            var message = json.ValueKind == JsonValueKind.Object && json.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
                ? m.GetString()
                : response.ReasonPhrase;
            throw new DaemonApiException(DaemonApiFailure.Refused, response.StatusCode, message ?? $"mobilityd answered {(int)response.StatusCode}");
        }
    }
}

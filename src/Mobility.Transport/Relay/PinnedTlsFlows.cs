using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Mobility.Net.Tls;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Relay;

/// <summary>
/// Opens flows inside TLS, for a relay's TLS endpoint (<c>mobility-relay serve --tls-listen</c>; docs/nat.md, "TLS to
/// relays"): on networks that let only HTTPS out. The relay's certificate is accepted only when the SHA-256 of its DER
/// encoding is one of <paramref name="pins"/>; nothing else about it (name, issuer, dates) is checked, so a
/// self-signed certificate works and no certificate authority is trusted. The relay protocol runs unchanged inside.
/// </summary>
public sealed class PinnedTlsFlowFactory(IFlowFactory inner, IReadOnlyList<byte[]> pins) : IFlowFactory
{
    /// <summary>Longest time for the TLS handshake after the TCP connect.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(15);

    public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(remote);
        var flow = await inner.ConnectAsync(remote, localAddress, cancellationToken).ConfigureAwait(false);
        string? seen = null;
        var tls = new SslStream(flow.Stream, leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(HandshakeTimeout);
            await tls.AuthenticateAsClientAsync(CertificatePins.ClientOptions(remote.Address.ToString(), pins, hash => seen = hash), timeout.Token)
                .ConfigureAwait(false);
            return new TlsFlow(flow, tls);
        }
        catch (Exception e) when (e is AuthenticationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            flow.Abort();
            throw new RelayException(seen is null
                ? $"TLS with the relay at {remote} failed: {e.Message}"
                : $"The relay at {remote} presented a certificate with SHA-256 {seen}, which is not pinned.", e);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            flow.Abort();
            throw;
        }
    }

    /// <summary>Parses a pin (<see cref="CertificatePins.Parse"/>): 64 hex digits, colons allowed; null when it is not one.</summary>
    public static byte[]? ParsePin(string text) => CertificatePins.Parse(text);

    /// <summary>A TCP flow with TLS on top: the stream is the TLS stream; the endpoints, abort and RTT are the TCP flow's.</summary>
    private sealed class TlsFlow(IFlow inner, SslStream tls) : IFlow
    {
        public Stream Stream => tls;

        public IPEndPoint? LocalEndPoint => inner.LocalEndPoint;

        public IPEndPoint? RemoteEndPoint => inner.RemoteEndPoint;

        public TimeSpan? SmoothedRtt => inner.SmoothedRtt;

        public void Abort() => inner.Abort();

        public async ValueTask DisposeAsync()
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            await inner.DisposeAsync().ConfigureAwait(false);
        }
    }
}

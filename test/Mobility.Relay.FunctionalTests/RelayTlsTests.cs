using System.Security.Cryptography;
using Mobility.Transport.Flows;

namespace Mobility.Relay.FunctionalTests;

/// <summary>
/// The relay's TLS endpoint with the transport's pinned TLS flows (docs/nat.md, "TLS to relays"): a host registers over
/// TLS when the relay's certificate matches its pin and not otherwise; a plain dial to the same endpoint (what a peer
/// reading the host's relay locator does) is spliced to the host's data connection inside TLS.
/// </summary>
public sealed class RelayTlsTests
{
    private static (string Certificate, string Key, byte[] Pin) CreateCertificate(string directory)
        => TestCertificates.CreateSelfSigned(directory, "relay");

    [Fact]
    public async Task A_host_registers_over_tls_only_with_the_pinned_certificate_and_a_plain_dial_on_that_endpoint_reaches_it()
    {
        var directory = Directory.CreateTempSubdirectory("relay-tls-").FullName;
        try
        {
            var (certificate, key, pin) = CreateCertificate(directory);
            await using var relay = await RelayProcess.StartAsync(extra: ["--tls-listen", "127.0.0.1:0", "--tls-cert", certificate, "--tls-key", key]);
            var tls = relay.Ready.EndPoint("tls") ?? throw new InvalidOperationException(relay.Ready.Text);
            using var host = HostKey.Generate();

            // Another certificate's pin: refused before a byte of the relay protocol is sent.
            var wrong = new PinnedTlsFlowFactory(TcpFlowFactory.Instance, [SHA256.HashData(pin)]);
            var refused = await Assert.ThrowsAsync<RelayException>(() => RelayFlowListener.RegisterAsync(host, tls, wrong).WithTimeout());
            Assert.Contains("not pinned", refused.Message, StringComparison.Ordinal);
            Assert.Contains(Convert.ToHexStringLower(pin), refused.Message, StringComparison.Ordinal);
            Assert.Equal(0, await relay.MetricAsync("relay_hosts"));

            var pinned = new PinnedTlsFlowFactory(TcpFlowFactory.Instance, [pin]);
            await using var registration = await RelayFlowListener.RegisterAsync(host, tls, pinned).WithTimeout();
            Assert.Equal(1, await relay.MetricAsync("relay_hosts"));

            // A peer dials the endpoint the host registered at (its relay locator) in plain TCP.
            var accepting = registration.AcceptAsync(CancellationToken.None).AsTask();
            await using var dialled = await RelayFlows.DialAsync(tls, host.Guid).AsTask().WithTimeout();
            await using var accepted = await accepting.WithTimeout();
            var up = RandomNumberGenerator.GetBytes(256 * 1024);
            var down = RandomNumberGenerator.GetBytes(256 * 1024);
            var sending = Task.WhenAll(dialled.Stream.WriteAsync(up).AsTask(), accepted.Stream.WriteAsync(down).AsTask());
            var receivedUp = new byte[up.Length];
            var receivedDown = new byte[down.Length];
            await Task.WhenAll(accepted.Stream.ReadExactlyAsync(receivedUp).AsTask(), dialled.Stream.ReadExactlyAsync(receivedDown).AsTask()).WithTimeout();
            await sending.WithTimeout();
            Assert.Equal(up, receivedUp);
            Assert.Equal(down, receivedDown);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_pin_is_64_hex_digits_with_or_without_colons()
    {
        var hash = SHA256.HashData("relay"u8);
        Assert.Equal(hash, PinnedTlsFlowFactory.ParsePin(Convert.ToHexString(hash)));
        Assert.Equal(hash, PinnedTlsFlowFactory.ParsePin(string.Join(':', hash.Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)))));
        Assert.Null(PinnedTlsFlowFactory.ParsePin("00"));
        Assert.Null(PinnedTlsFlowFactory.ParsePin(new string('g', 64)));
    }
}

using System.Buffers.Binary;
using System.Net.Security;
using Mobility.Net.Tls;

namespace Mobility.Gns.FunctionalTests.Streams;

/// <summary>
/// <c>gns serve --tls-listen</c> (docs/protocol.md, "GNS over TLS") spoken to by hand over TLS on loopback: the datagram
/// protocol length-prefixed, Reflect naming the TCP peer, and hostile framing (a length too large, a frame cut short,
/// a frame dripped too slowly, too many connections from one source) closing only the offending connection.
/// </summary>
public sealed class GnsTlsEndpointTests(GnsTlsEndpointTests.GnsWithTls fixture) : IClassFixture<GnsTlsEndpointTests.GnsWithTls>
{
    /// <summary>One real gns with a TLS endpoint for the class (starting one per test is slow on a loaded machine).</summary>
    public sealed class GnsWithTls : IAsyncLifetime
    {
        private string _directory = null!;

        public byte[] Pin { get; private set; } = null!;

        public GnsProcess Gns { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _directory = Directory.CreateTempSubdirectory("gns-tls-").FullName;
            var (certificate, key, pin) = TestCertificates.CreateSelfSigned(_directory, "gns");
            Pin = pin;
            string[] arguments = ["serve", "--memory", "--udp", "off", "--http", "127.0.0.1:0", "--grpc", "off",
                "--tls-listen", "127.0.0.1:0", "--tls-cert", certificate, "--tls-key", key];
            // Two connections per source, so the surplus one is refused in a test's time.
            Gns = await GnsProcess.StartAsync(arguments, new Dictionary<string, string> { ["GNS_Gns__StreamMaxConnectionsPerSource"] = "2" });
            // A short idle timeout, so the slow connection is cut in a test's time (only the test of that uses it: on a
            // loaded machine the others could wait that long between two messages).
            Impatient = await GnsProcess.StartAsync(arguments, new Dictionary<string, string> { ["GNS_Gns__StreamIdleTimeout"] = "00:00:02" });
        }

        /// <summary>A gns whose TLS endpoint closes a connection that has not delivered a whole message within 2 s.</summary>
        public GnsProcess Impatient { get; private set; } = null!;

        public async Task DisposeAsync()
        {
            await Gns.DisposeAsync();
            await Impatient.DisposeAsync();
            Directory.Delete(_directory, recursive: true);
        }
    }

    private GnsProcess Gns => fixture.Gns;

    private byte[] Pin => fixture.Pin;

    private static IPEndPoint TlsOf(GnsProcess gns) => gns.Ready.EndPoint("tls") ?? throw new InvalidOperationException(gns.Ready.Text);

    /// <param name="source">The local address (each test its own, so that one test's connections never count against another's).</param>
    private async Task<(TcpClient Tcp, SslStream Stream)> ConnectAsync(string source, GnsProcess? gns = null)
    {
        var tcp = new TcpClient(new IPEndPoint(IPAddress.Parse(source), 0));
        await tcp.ConnectAsync(TlsOf(gns ?? Gns)).WithTimeout();
        var stream = new SslStream(tcp.GetStream());
        await stream.AuthenticateAsClientAsync(CertificatePins.ClientOptions("127.0.0.1", [Pin], _ => { })).WithTimeout();
        return (tcp, stream);
    }

    private static async Task<GnsResponse> ExchangeAsync(SslStream stream, byte[] request)
    {
        await stream.WriteAsync(GnsStreamFrame.Frame(request)).WithTimeout();
        var prefix = new byte[GnsStreamFrame.PrefixSize];
        await stream.ReadExactlyAsync(prefix).WithTimeout();
        var reply = new byte[GnsStreamFrame.ReadLength(prefix)];
        await stream.ReadExactlyAsync(reply).WithTimeout();
        return GnsDatagram.ParseResponse(reply);
    }

    /// <summary>True once the server closed the stream (end of stream or a reset): nothing more is read.</summary>
    private static async Task<bool> ClosedByServerAsync(SslStream stream)
    {
        try
        {
            return await stream.ReadAsync(new byte[64]).AsTask().WithTimeout() == 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    [Fact]
    public async Task Requests_are_answered_in_order_and_reflect_names_the_tcp_peer()
    {
        var (tcp, stream) = await ConnectAsync("127.0.0.2");
        using (tcp)
        await using (stream)
        {
            using var key = HostKey.Generate();
            var notFound = await ExchangeAsync(stream, GnsDatagram.LookupGuid(7, key.Guid));
            Assert.Equal(7u, notFound.RequestId);
            Assert.Equal(GnsErrorCode.NotFound, notFound.ErrorCode);

            var ack = await ExchangeAsync(stream, GnsDatagram.Update(8, GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.9"), 4000)])));
            Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
            Assert.Equal(tcp.Client.LocalEndPoint, ack.Observed);

            var found = await ExchangeAsync(stream, GnsDatagram.LookupGuid(9, key.Guid));
            Assert.Equal(key.Guid, found.Record!.Guid);

            var reflect = await ExchangeAsync(stream, GnsDatagram.Reflect(10));
            Assert.Equal(GnsMessageType.ReflectReply, reflect.Type);
            Assert.Equal(tcp.Client.LocalEndPoint, reflect.Observed);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(GnsDatagram.MaxDatagramSize + 1)]
    [InlineData(ushort.MaxValue)]
    public async Task A_length_prefix_of_zero_or_above_the_largest_datagram_closes_the_connection(int length)
    {
        var (tcp, stream) = await ConnectAsync("127.0.0.3");
        using (tcp)
        await using (stream)
        {
            var prefix = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(prefix, (ushort)length);
            await stream.WriteAsync(prefix).WithTimeout();
            await stream.FlushAsync().WithTimeout();
            Assert.True(await ClosedByServerAsync(stream));
        }

        await AnotherConnectionIsServedAsync();
    }

    [Fact]
    public async Task A_frame_cut_short_by_the_peer_leaves_the_server_serving_others()
    {
        var (tcp, stream) = await ConnectAsync("127.0.0.4");
        using (tcp)
        await using (stream)
        {
            var frame = GnsStreamFrame.Frame(GnsDatagram.Reflect(1));
            await stream.WriteAsync(frame.AsMemory(0, frame.Length - 3)).WithTimeout();
            await stream.FlushAsync().WithTimeout();
        }

        await AnotherConnectionIsServedAsync();
    }

    [Fact]
    public async Task A_frame_dripped_a_byte_at_a_time_is_cut_after_the_idle_timeout()
    {
        var (tcp, stream) = await ConnectAsync("127.0.0.5", fixture.Impatient);
        using (tcp)
        await using (stream)
        {
            // Each byte arrives well within the timeout, the whole frame never does: the deadline is per message, not per read.
            var frame = GnsStreamFrame.Frame(GnsDatagram.Reflect(1, padTo: GnsDatagram.MaxDatagramSize));
            var closed = false;
            for (var i = 0; i < frame.Length && !closed; i++)
            {
                try
                {
                    await stream.WriteAsync(frame.AsMemory(i, 1)).WithTimeout();
                    await stream.FlushAsync().WithTimeout();
                }
                catch (IOException)
                {
                    closed = true;
                }

                await Task.Delay(100);
                // Readable now means the server ended the stream (it sends nothing before a whole request).
                closed = closed || (tcp.Client.Poll(0, SelectMode.SelectRead) && await ClosedByServerAsync(stream));
            }

            Assert.True(closed || await ClosedByServerAsync(stream), "The server took a whole frame dripped over more than its idle timeout.");
        }

        await AnotherConnectionIsServedAsync(fixture.Impatient);
    }

    [Fact]
    public async Task A_source_gets_no_more_than_its_connections_and_the_others_stay_served()
    {
        var (tcp1, stream1) = await ConnectAsync("127.0.0.6");
        var (tcp2, stream2) = await ConnectAsync("127.0.0.6");
        using (tcp1)
        using (tcp2)
        await using (stream1)
        await using (stream2)
        {
            // Both are being served (a handler runs only after the server's side of the handshake) before the third comes.
            Assert.Equal(GnsMessageType.ReflectReply, (await ExchangeAsync(stream1, GnsDatagram.Reflect(1))).Type);
            Assert.Equal(GnsMessageType.ReflectReply, (await ExchangeAsync(stream2, GnsDatagram.Reflect(2))).Type);

            // Kestrel finishes the TLS handshake before the handler refuses: the third is closed right after it.
            using var tcp3 = new TcpClient(new IPEndPoint(IPAddress.Parse("127.0.0.6"), 0));
            await tcp3.ConnectAsync(TlsOf(Gns)).WithTimeout();
            var stream3 = new SslStream(tcp3.GetStream());
            await using (stream3)
            {
                var refused = false;
                try
                {
                    await stream3.AuthenticateAsClientAsync(CertificatePins.ClientOptions("127.0.0.1", [Pin], _ => { })).WithTimeout();
                    await stream3.WriteAsync(GnsStreamFrame.Frame(GnsDatagram.Reflect(3))).WithTimeout();
                    refused = await ClosedByServerAsync(stream3);
                }
                catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
                {
                    refused = true;
                }

                Assert.True(refused);
            }

            Assert.Equal(GnsMessageType.ReflectReply, (await ExchangeAsync(stream1, GnsDatagram.Reflect(3))).Type);
            Assert.Equal(GnsMessageType.ReflectReply, (await ExchangeAsync(stream2, GnsDatagram.Reflect(4))).Type);
        }
    }

    private async Task AnotherConnectionIsServedAsync(GnsProcess? gns = null)
    {
        // The closed connection's slot is freed when its handler ends; wait for it rather than assume an order.
        await TestTimeout.Eventually(async () =>
        {
            try
            {
                var (tcp, stream) = await ConnectAsync("127.0.0.9", gns);
                using (tcp)
                await using (stream)
                {
                    return (await ExchangeAsync(stream, GnsDatagram.Reflect(5))).Type == GnsMessageType.ReflectReply;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or System.Security.Authentication.AuthenticationException)
            {
                return false;
            }
        }, "another TLS connection is served");
    }
}

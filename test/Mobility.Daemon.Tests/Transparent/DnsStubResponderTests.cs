using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Transparent;
using Mobility.Gns.Client;
using Mobility.Protocol.Gns;

namespace Mobility.Daemon.Tests.Transparent;

public sealed class DnsStubResponderTests : IDisposable
{
    private static readonly HostGuid Peer = HostGuid.Parse("0123456789abcdef0123456789abcdef01234567");
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "dnsstub-" + Guid.NewGuid().ToString("N"));
    private readonly Directory_ _peers = new();
    private readonly VirtualAddressMap _map;
    private readonly DnsStubResponder _responder;

    public DnsStubResponderTests()
    {
        Directory.CreateDirectory(_stateDir);
        var resolvConf = Path.Combine(_stateDir, "resolv.conf");
        File.WriteAllText(resolvConf, "# no nameserver\nsearch example\n");
        var options = new MobilitydOptions { StateDir = _stateDir };
        options.Transparent.ResolvConf = resolvConf;
        var wrapped = Options.Create(options);
        _map = new VirtualAddressMap(wrapped, new FakeTimeProvider(), NullLogger<VirtualAddressMap>.Instance);
        _responder = new DnsStubResponder(_map, _peers, new DnsUpstream(wrapped, NullLogger<DnsUpstream>.Instance), wrapped,
            NullLogger<DnsStubResponder>.Instance);
        _peers.Names["peer"] = Peer;
    }

    public void Dispose() => Directory.Delete(_stateDir, recursive: true);

    private sealed class Directory_ : IPeerDirectory
    {
        public Dictionary<string, HostGuid> Names { get; } = new(StringComparer.Ordinal);

        public bool Fail { get; set; }

        public Task<HostGuid?> FindNameAsync(string name, CancellationToken cancellationToken)
            => Fail ? throw new GnsException(GnsErrorCode.Unavailable, "down") : Task.FromResult<HostGuid?>(Names.TryGetValue(name, out var g) ? g : null);

        public Task<bool> IsRegisteredAsync(HostGuid guid, CancellationToken cancellationToken)
            => Fail ? throw new GnsException(GnsErrorCode.Unavailable, "down") : Task.FromResult(Names.ContainsValue(guid));
    }

    /// <summary>A standard query with one question (RD set), optionally with an OPT record.</summary>
    private static byte[] Query(string name, ushort type, ushort id = 0x1234, ushort flags = 0x0100, ushort? ednsSize = null)
    {
        var bytes = new List<byte>();
        void U16(ushort v) => bytes.AddRange([(byte)(v >> 8), (byte)v]);
        U16(id);
        U16(flags);
        U16(1);
        U16(0);
        U16(0);
        U16(ednsSize is null ? (ushort)0 : (ushort)1);
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }

        bytes.Add(0);
        U16(type);
        U16(1);
        if (ednsSize is { } size)
        {
            bytes.Add(0);
            U16(41);
            U16(size);
            U16(0);
            U16(0);
            U16(0);
        }

        return [.. bytes];
    }

    private async Task<byte[]> AskAsync(byte[] query, bool overTcp = false)
    {
        var response = new byte[65535];
        var length = await _responder.RespondAsync(query, response, overTcp, CancellationToken.None).WithTimeout();
        return response[..length];
    }

    private static int Code(byte[] response) => response[3] & 0xF;

    private static int Count(byte[] response, int section) => BinaryPrimitives.ReadUInt16BigEndian(response.AsSpan(4 + 2 * section));

    [Fact]
    public async Task A_name_in_mob_answers_the_peers_virtual_ipv4_and_ipv6()
    {
        var a = await AskAsync(Query("peer.mob", 1));
        var aaaa = await AskAsync(Query("PEER.Mob.", 28));

        var addresses = _map.Resolve(Peer);
        Assert.Equal(0, Code(a));
        Assert.Equal(1, Count(a, 1));
        Assert.Equal(addresses.Ipv4.GetAddressBytes(), a[^4..]);
        Assert.Equal(0x34, a[1]);
        Assert.True((a[2] & 0x84) == 0x84, "QR and AA are set");
        Assert.Equal(1, Count(aaaa, 1));
        Assert.Equal(VirtualAddressPool.Ipv6Of(Peer).GetAddressBytes(), aaaa[^16..]);
    }

    [Fact]
    public async Task A_guid_in_guid_answers_only_when_it_has_a_record()
    {
        var known = await AskAsync(Query(Peer + ".guid", 1));
        var unknown = await AskAsync(Query(new string('f', 40) + ".guid", 1));
        var notHex = await AskAsync(Query("peer.guid", 1));

        Assert.Equal(1, Count(known, 1));
        Assert.True(_map.TryGetGuid(new IPAddress(known[^4..]), out var guid));
        Assert.Equal(Peer, guid);
        Assert.Equal(3, Code(unknown));
        Assert.Equal(3, Code(notHex));
    }

    [Theory]
    [InlineData("nobody.mob", 1, 3)]
    [InlineData("a.peer.mob", 1, 3)]
    [InlineData("bad_label!.mob", 1, 3)]
    [InlineData("peer.mob", 15, 0)]
    [InlineData("mob", 1, 0)]
    public async Task Unknown_names_are_nxdomain_and_other_types_nodata_with_the_soa(string name, ushort type, int code)
    {
        var response = await AskAsync(Query(name, type));

        Assert.Equal(code, Code(response));
        Assert.Equal(0, Count(response, 1));
        Assert.Equal(1, Count(response, 2));
        Assert.Equal(0, _map.Count);
    }

    [Fact]
    public async Task A_name_outside_the_zones_is_refused_without_an_upstream()
    {
        var response = await AskAsync(Query("example.com", 1));

        Assert.Equal(5, Code(response));
    }

    [Fact]
    public async Task A_gns_failure_is_servfail()
    {
        _peers.Fail = true;

        var response = await AskAsync(Query("peer.mob", 1));

        Assert.Equal(2, Code(response));
    }

    [Fact]
    public async Task Hostile_messages_get_formerr_notimp_or_nothing()
    {
        var query = Query("peer.mob", 1);

        Assert.Empty(await AskAsync(query[..5]));                          // shorter than a header: dropped
        Assert.Empty(await AskAsync(Query("peer.mob", 1, flags: 0x8100)));  // a response: dropped (no reflection loops)
        Assert.Equal(1, Code(await AskAsync(query[..^2])));                 // the question cut short: FORMERR
        Assert.Equal(1, Code(await AskAsync([.. query, 0])));               // trailing garbage: FORMERR
        Assert.Equal(4, Code(await AskAsync(Query("peer.mob", 1, flags: 0x2100)))); // opcode UPDATE: NOTIMP

        // A compression pointer to itself, right after the header: FORMERR, not a loop.
        byte[] loop = [.. query[..12], 0xC0, 12, 0, 1, 0, 1];
        Assert.Equal(1, Code(await AskAsync(loop)));
    }

    [Fact]
    public async Task Zone_transfers_and_other_classes_are_refused()
    {
        Assert.Equal(5, Code(await AskAsync(Query("peer.mob", 252))));
        var chaos = Query("peer.mob", 1);
        chaos[^1] = 3;
        Assert.Equal(5, Code(await AskAsync(chaos)));
    }

    [Fact]
    public async Task Edns_is_echoed_and_unknown_versions_are_badvers()
    {
        var response = await AskAsync(Query("peer.mob", 28, ednsSize: 4096));
        Assert.Equal(0, Code(response));
        Assert.Equal(1, Count(response, 3));

        var v1 = Query("peer.mob", 28, ednsSize: 4096);
        v1[^5] = 1; // the version octet of the OPT TTL
        var badVers = await AskAsync(v1);
        Assert.Equal(1, Count(badVers, 3));
        Assert.Equal(0, Count(badVers, 1));
    }
}

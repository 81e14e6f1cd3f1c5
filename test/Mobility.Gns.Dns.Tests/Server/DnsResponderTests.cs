using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using static Mobility.Gns.Dns.Tests.Records;

namespace Mobility.Gns.Dns.Tests.Server;

/// <summary>The responder from query bytes to response bytes over an in-memory store: no sockets.</summary>
public sealed class DnsResponderTests : IAsyncLifetime
{
    private readonly InMemoryGnsStore _store = new();
    private readonly HostKey _key = HostKey.Generate();
    private readonly RecordingLogger<DnsResponder> _log = new();
    private DnsResponder _responder = null!;
    private GnsRecord _record = null!;

    public async Task InitializeAsync()
    {
        _responder = new DnsResponder(_store, Options.Create(new GnsDnsOptions { Zone = "gns.test" }), _log);
        _record = Make(_key, 1, "alice", 0,
            At("192.0.2.1"), At("192.0.2.1", 5000), At("203.0.113.7", 1, LocatorKind.Observed), At("2001:db8::1"), At("198.51.100.9", 9, LocatorKind.Relay));
        await _store.PutAsync(_record, false).WithTimeout();
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _key.Dispose();
        Assert.DoesNotContain(_log.Entries, e => e.Level > LogLevel.Debug);
    }

    private async Task<ParsedResponse> Ask(byte[] query, DnsTransport transport = DnsTransport.Udp)
    {
        var buffer = new byte[DnsLimits.MaxMessageSize];
        var length = await _responder.RespondAsync(query, buffer, transport, CancellationToken.None).WithTimeout();
        Assert.True(length > 0);
        return ParsedResponse.Parse(buffer.AsSpan(0, length));
    }

    [Fact]
    public async Task A_by_guid_lists_the_distinct_host_and_observed_IPv4_addresses_with_the_record_TTL_and_no_relay()
    {
        var response = await Ask(Query.Build($"{_key.Guid}.gns.test", DnsType.A));

        Assert.Equal(0, response.Code);
        Assert.True(response.Authoritative);
        Assert.Equal(new[] { "192.0.2.1", "203.0.113.7" }, response.Answers.Select(a => new IPAddress(a.Data).ToString()));
        Assert.All(response.Answers, a => Assert.Equal(0u, a.Ttl));
    }

    [Fact]
    public async Task AAAA_by_name_is_case_insensitive_and_echoes_the_question_case()
    {
        var response = await Ask(Query.Build("ALICE.Gns.Test", DnsType.AAAA));

        Assert.Equal("ALICE.Gns.Test.", response.Question.ToString());
        Assert.Equal("2001:db8::1", new IPAddress(Assert.Single(response.Answers).Data).ToString());
    }

    [Fact]
    public async Task TXT_holds_the_guid_and_the_base64_public_key()
    {
        var txt = Assert.Single((await Ask(Query.Build("alice.gns.test", DnsType.TXT))).Answers);

        var strings = new List<string>();
        for (var i = 0; i < txt.Data.Length; i += 1 + txt.Data[i])
        {
            strings.Add(Encoding.ASCII.GetString(txt.Data, i + 1, txt.Data[i]));
        }

        Assert.Equal(["guid=" + _key.Guid, "key=" + Convert.ToBase64String(_key.PublicKey)], strings);
    }

    [Fact]
    public async Task An_unknown_name_or_guid_is_NXDOMAIN_with_the_SOA_and_its_negative_TTL()
    {
        foreach (var name in new[] { "bob.gns.test", $"{HostGuid.FromPublicKey(new byte[32])}.gns.test", "deep.alice.gns.test", "not_a_name.gns.test" })
        {
            var response = await Ask(Query.Build(name, DnsType.A));

            Assert.Equal((int)DnsResponseCode.NXDomain, response.Code);
            Assert.Empty(response.Answers);
            var soa = Assert.Single(response.Authority);
            Assert.Equal(DnsType.SOA, soa.Type);
            Assert.Equal(5u, soa.Ttl);
        }
    }

    [Fact]
    public async Task A_known_name_without_the_type_is_NODATA_with_the_SOA()
    {
        var key = HostKey.Generate();
        await _store.PutAsync(Make(key, 1, "v4only", 30, At("192.0.2.9")), false).WithTimeout();

        foreach (var type in new[] { DnsType.AAAA, DnsType.NS, (DnsType)15 })
        {
            var response = await Ask(Query.Build("v4only.gns.test", type));
            Assert.Equal(0, response.Code);
            Assert.Empty(response.Answers);
            Assert.Equal(DnsType.SOA, Assert.Single(response.Authority).Type);
        }

        key.Dispose();
    }

    [Fact]
    public async Task Names_outside_the_zone_and_other_classes_are_REFUSED()
    {
        Assert.Equal((int)DnsResponseCode.Refused, (await Ask(Query.Build("example.org", DnsType.A))).Code);
        Assert.Equal((int)DnsResponseCode.Refused, (await Ask(Query.Build("gns.test.evil", DnsType.A))).Code);
        Assert.Equal((int)DnsResponseCode.Refused, (await Ask(Query.Build("alice.gns.test", DnsType.A, @class: (DnsClass)3))).Code);
        Assert.Equal((int)DnsResponseCode.Refused, (await Ask(Query.Build("gns.test", DnsType.AXFR), DnsTransport.Tcp)).Code);
    }

    [Fact]
    public async Task The_apex_answers_SOA_and_NS_and_NODATA_for_addresses()
    {
        var soa = await Ask(Query.Build("GNS.test", DnsType.SOA));
        Assert.Equal(DnsType.SOA, Assert.Single(soa.Answers).Type);
        Assert.Equal(3600u, soa.Answers[0].Ttl);

        var ns = await Ask(Query.Build("gns.test", DnsType.NS));
        Assert.Equal(DnsType.NS, Assert.Single(ns.Answers).Type);

        var a = await Ask(Query.Build("gns.test", DnsType.A));
        Assert.Empty(a.Answers);
        Assert.Equal(DnsType.SOA, Assert.Single(a.Authority).Type);
    }

    [Fact]
    public async Task Two_questions_are_FORMERR_another_opcode_NOTIMP_and_EDNS_version_1_BADVERS()
    {
        Assert.Equal((int)DnsResponseCode.FormErr, (await Ask(Query.Build("alice.gns.test", DnsType.A, qdCount: 2))).Code);
        Assert.Equal((int)DnsResponseCode.NotImp, (await Ask(Query.Build("alice.gns.test", DnsType.A, flags: 4 << 11))).Code);
        Assert.Equal((int)DnsResponseCode.BadVers, (await Ask(Query.Build("alice.gns.test", DnsType.A, edns: true, ednsVersion: 1))).Code);
    }

    [Fact]
    public async Task A_response_or_a_runt_is_dropped_without_an_answer()
    {
        var buffer = new byte[512];

        Assert.Equal(0, await _responder.RespondAsync(Query.Build("alice.gns.test", DnsType.A, flags: 0x8000), buffer, DnsTransport.Udp, default).WithTimeout());
        Assert.Equal(0, await _responder.RespondAsync(new byte[5], buffer, DnsTransport.Udp, default).WithTimeout());
    }

    [Fact]
    public async Task A_big_answer_is_truncated_at_512_without_EDNS_fits_the_advertised_size_with_it_and_is_whole_over_TCP()
    {
        // The longest name and the most IPv6 locators: 538 octets without EDNS (16 x 28 for the answers).
        var key = HostKey.Generate();
        var big = new string('b', HostName.MaxLength);
        await _store.PutAsync(Make(key, 1, big, 60, Enumerable.Range(1, GnsRecord.MaxLocators).Select(i => At($"2001:db8::{i:x}")).ToArray()), false).WithTimeout();

        var classic = await Ask(Query.Build($"{big}.gns.test", DnsType.AAAA));
        Assert.True(classic.Truncated);
        Assert.Empty(classic.Answers);
        Assert.True(classic.Length <= 512);

        var small = await Ask(Query.Build($"{big}.gns.test", DnsType.AAAA, edns: true, udpSize: 300));
        Assert.True(small.Truncated);

        var edns = await Ask(Query.Build($"{big}.gns.test", DnsType.AAAA, edns: true, udpSize: 4096));
        Assert.False(edns.Truncated);
        Assert.Equal(GnsRecord.MaxLocators, edns.Answers.Count);

        var tcp = await Ask(Query.Build($"{big}.gns.test", DnsType.AAAA), DnsTransport.Tcp);
        Assert.False(tcp.Truncated);
        Assert.Equal(GnsRecord.MaxLocators, tcp.Answers.Count);
        key.Dispose();
    }

    [Fact]
    public async Task A_failing_store_is_SERVFAIL()
    {
        var responder = new DnsResponder(new FailingStore(), Options.Create(new GnsDnsOptions { Zone = "gns.test" }), NullLogger<DnsResponder>.Instance);
        var buffer = new byte[512];

        var length = await responder.RespondAsync(Query.Build("alice.gns.test", DnsType.A), buffer, DnsTransport.Udp, default).WithTimeout();

        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2)) & 0xF);
        Assert.True(length >= DnsLimits.HeaderSize);
    }

    [Fact]
    public async Task Hostile_queries_never_log_above_Debug_and_never_throw()
    {
        var random = new Random(99);
        var buffer = new byte[DnsLimits.MaxMessageSize];
        var valid = Query.Build("alice.gns.test", DnsType.ANY, edns: true);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = (byte[])valid.Clone();
            bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            await _responder.RespondAsync(bytes, buffer, DnsTransport.Udp, default).WithTimeout();
        }
    }

    private sealed class FailingStore : IGnsStore
    {
        public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default) => throw new IOException("down");

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

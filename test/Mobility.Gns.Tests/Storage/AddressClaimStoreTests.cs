using Mobility.Gns.Claims;

namespace Mobility.Gns.Tests.Storage;

public sealed class InMemoryAddressClaimTests : AddressClaimContractTests
{
    private InMemoryGnsStore? _memory;

    protected override int? ClaimCount => _memory?.ClaimCount;

    protected override IGnsStore CreateStore(ClaimLimits limits, TimeProvider time) => _memory = new InMemoryGnsStore(limits, time);
}

public sealed class SqliteAddressClaimTests : AddressClaimContractTests
{
    private readonly TempDirectory _folder = new();

    protected override int? ClaimCount => null;

    protected override IGnsStore CreateStore(ClaimLimits limits, TimeProvider time)
        => new SqliteGnsStore(new SqliteGnsStoreOptions { DataDirectory = _folder.Path }, null, limits, time);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _folder.Dispose();
    }
}

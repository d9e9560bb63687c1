using ActorBackup.Engine.Library;

namespace ActorBackup.Engine.Tests;

/// <summary>A volume medium that hands every call to <paramref name="inner"/>: a test overrides the calls it watches or holds up.</summary>
public abstract class ForwardingMedium(IVolumeMedium inner) : IVolumeMedium
{
    public string Kind => inner.Kind;
    public int Stream => inner.Stream;
    public string PathOf(uint volume) => inner.PathOf(volume);
    public IEnumerable<string> Files() => inner.Files();
    public (string Path, string Label) Allocate(uint volume, string libraryId) => inner.Allocate(volume, libraryId);
    public virtual void Reading(uint volume, long offset, long length) => inner.Reading(volume, offset, length);
    public virtual void Writing(uint volume, long offset, long length) => inner.Writing(volume, offset, length);
    public long Release(uint volume, bool retire = false) => inner.Release(volume, retire);
    public long? Available(IEnumerable<long> writing) => inner.Available(writing);
    public uint HighestWritten() => inner.HighestWritten();
    public void Dispose() => inner.Dispose();
}

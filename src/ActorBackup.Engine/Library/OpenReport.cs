namespace ActorBackup.Engine.Library;

/// <summary>What opening a library found and did, for the operator.</summary>
public sealed record OpenReport(int RecoveredRecords, long TornBytesCut, IReadOnlyList<string> Problems);

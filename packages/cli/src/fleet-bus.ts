/** The bus of fleet-mode processes: Kafka, configured from WATTSPLIT_KAFKA_* (see docs/configuration.md) or --brokers. */
import { KafkaBus, PlatformaticKafkaBus, kafkaOptionsFromEnv } from '@wattsplit/kafka';
import type { Logger } from '@wattsplit/wire';

export function kafkaBusFromEnv(brokers: string | undefined, logger: Logger): KafkaBus | PlatformaticKafkaBus {
  const env = { ...process.env };
  if (brokers) env.WATTSPLIT_KAFKA_BROKERS = brokers;
  const { client, ...opts } = kafkaOptionsFromEnv(env);
  return client === 'platformatic' ? new PlatformaticKafkaBus({ ...opts, logger }) : new KafkaBus({ ...opts, logger });
}

/** Kept here for the commands that import it with the bus; the agent imports ./signals.js (no Kafka). */
export { untilSignal } from './signals.js';

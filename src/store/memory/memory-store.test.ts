import { storeContract } from '../contract/suite.js';
import { MemoryStore } from './memory-store.js';

storeContract('MemoryStore', async () => ({ store: new MemoryStore(), cleanup: async () => {} }));
